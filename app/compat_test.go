package app

import (
	"reflect"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

func TestTypeFamily(t *testing.T) {
	for _, group := range [][]string{
		{"INTEGER", "bigint", "int(11) unsigned", "smallint", "BIGSERIAL", "mediumint", "tinyint(4)", "int8"},
		{"VARCHAR(255)", "text", "character varying(64)", "longtext", "CHAR(26)", "uuid", "enum('a','b')", "citext", "CLOB"},
		{"DATETIME", "timestamp with time zone", "timestamp without time zone", "TIMESTAMP", "datetime(6)"},
		{"BOOLEAN", "tinyint(1)", "bool"},
		{"REAL", "double precision", "FLOAT", "double"},
		{"numeric(10,2)", "DECIMAL(8,2)", "NUMERIC"},
		{"BLOB", "bytea", "varbinary(16)", "longblob"},
		{"json", "jsonb", "JSON"},
		{"date", "DATE"},
		{"time", "time without time zone"},
	} {
		want := typeFamily(group[0])
		for _, typ := range group[1:] {
			if got := typeFamily(typ); got != want {
				t.Errorf("typeFamily(%q) = %s, want %s like %q", typ, got, want, group[0])
			}
		}
	}
	distinct := []string{"INTEGER", "TEXT", "DATETIME", "BOOLEAN", "REAL", "NUMERIC", "BLOB", "JSON", "DATE", "TIME", "point"}
	seen := map[string]string{}
	for _, typ := range distinct {
		f := typeFamily(typ)
		if other, ok := seen[f]; ok {
			t.Errorf("%q and %q are both %s", typ, other, f)
		}
		seen[f] = typ
	}
	if typeFamily("") != familyAny {
		t.Error("an undeclared SQLite type must match anything")
	}
}

func TestCompareModels(t *testing.T) {
	col := func(name, typ string) protocol.Column { return protocol.Column{Name: name, Type: typ} }
	t.Run("differences", func(t *testing.T) {
		src := protocol.Model{Name: "posts", Columns: []protocol.Column{
			col("id", "INTEGER"), col("uuid", "TEXT"), col("Title", "VARCHAR(255)"), col("views", "INTEGER"),
			col("body", "TEXT"), col("meta", ""),
		}}
		dst := protocol.Model{Name: "articles", Columns: []protocol.Column{
			col("id", "bigint"), col("uuid", "uuid"), col("title", "text"), col("views", "numeric(10,2)"),
			col("meta", "jsonb"), col("author", "text"),
		}}
		key := "uuid"
		want := CompatReport{
			MissingOnTarget: []string{"body"},
			ExtraOnTarget:   []string{"author"},
			TypeDifferences: []TypeDifference{{Column: "views", SourceType: "INTEGER", TargetType: "numeric(10,2)"}},
			KeyField:        &key,
		}
		if got := compareModels(src, dst); !reflect.DeepEqual(got, want) {
			t.Fatalf("compareModels =\n%+v\nwant\n%+v", got, want)
		}
	})
	t.Run("key field order and none", func(t *testing.T) {
		m := protocol.Model{Columns: []protocol.Column{col("title", "TEXT"), col("slug", "TEXT"), col("ulid", "TEXT")}}
		n := protocol.Model{Columns: []protocol.Column{col("title", "TEXT"), col("slug", "TEXT")}}
		if got := compareModels(m, n); got.KeyField == nil || *got.KeyField != "slug" {
			t.Fatalf("key field %v, want slug", got.KeyField)
		}
		none := compareModels(protocol.Model{Columns: []protocol.Column{col("id", "INTEGER")}}, n)
		if none.KeyField != nil || none.MissingOnTarget == nil || none.TypeDifferences == nil {
			t.Fatalf("%+v: want no key field and empty lists, not null", none)
		}
	})
}
