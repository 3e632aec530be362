package sqldb

import (
	"slices"
	"strings"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// kind is how mooxsync converts a column's values, derived from its declared type.
type kind uint8

const (
	kindOther      kind = iota // passed through as it comes
	kindText                   // strings
	kindInt                    // integers, bound as int64 when they fit
	kindFloat                  // binary floating point
	kindDecimal                // exact numbers, bound as their decimal text
	kindBool                   // booleans (SQLite and MySQL store 0/1)
	kindDatetime               // date and time without zone, stored as UTC wall clock
	kindDatetimeTZ             // instant (PG timestamptz, MySQL TIMESTAMP)
	kindDate                   // calendar date
	kindTime                   // time of day, passed through as text
	kindJSON                   // JSON documents
	kindBlob                   // bytes; base64 in row images and reads
)

// column is one introspected column.
type column struct {
	protocol.Column
	idx  int // position in table.cols
	kind kind
}

// table is one introspected application table. It is immutable once built: a schema
// refresh replaces it in the cache.
type table struct {
	name   string
	cols   []*column
	byName map[string]*column
	pk     []string
	unique [][]string // unique indexes and constraints, primary key excluded
}

func newTable(name string) *table {
	return &table{name: name, byName: map[string]*column{}}
}

func (t *table) addColumn(c protocol.Column, k kind) {
	col := &column{Column: c, idx: len(t.cols), kind: k}
	t.cols = append(t.cols, col)
	t.byName[c.Name] = col
}

// finish marks primary key columns and sorts the unique sets.
func (t *table) finish() {
	for _, name := range t.pk {
		if c := t.byName[name]; c != nil {
			c.PrimaryKey = true
		}
	}
	slices.SortFunc(t.unique, func(a, b []string) int { return slices.Compare(a, b) })
	t.unique = slices.CompactFunc(t.unique, slices.Equal[[]string])
}

// model returns a deep copy of the table as the protocol describes it.
func (t *table) model() protocol.Model {
	m := protocol.Model{Name: t.name, Columns: make([]protocol.Column, len(t.cols)), Unique: [][]string{}}
	for i, c := range t.cols {
		m.Columns[i] = c.Column
	}
	for _, u := range t.unique {
		m.Unique = append(m.Unique, slices.Clone(u))
	}
	return m
}

// column returns the named column or a CodeUnknownColumn error.
func (t *table) column(name string) (*column, error) {
	if c := t.byName[name]; c != nil {
		return c, nil
	}
	return nil, unknownColumn(t.name, name)
}

// uniqueOn reports whether col alone is guaranteed unique (a single-column unique index,
// or a single-column primary key).
func (t *table) uniqueOn(col string) bool {
	if len(t.pk) == 1 && t.pk[0] == col {
		return true
	}
	for _, u := range t.unique {
		if len(u) == 1 && u[0] == col {
			return true
		}
	}
	return false
}

// otherUniqueTouched reports whether a unique index or primary key other than the one on
// key contains a column in set. A MySQL "ON DUPLICATE KEY UPDATE" fires on any of them, so
// it is only safe when none is touched.
func (t *table) otherUniqueTouched(key string, set []*column) bool {
	touched := func(idx []string) bool {
		if len(idx) == 1 && idx[0] == key {
			return false
		}
		for _, name := range idx {
			for _, c := range set {
				if c.Name == name {
					return true
				}
			}
		}
		return false
	}
	if touched(t.pk) {
		return true
	}
	return slices.ContainsFunc(t.unique, touched)
}

// isInternal reports whether a table belongs to mooxsync itself rather than to the application.
func isInternal(name string) bool {
	return strings.HasPrefix(strings.ToLower(name), "mooxsync_")
}

func unknownModel(name string) error {
	return protocol.Errorf(protocol.CodeUnknownModel, "unknown model %q", name)
}

func unknownColumn(tableName, col string) error {
	return protocol.Errorf(protocol.CodeUnknownColumn, "unknown column %q in model %q", col, tableName)
}

// sqliteKind classifies a declared SQLite column type, following SQLite's affinity rules
// and the names frameworks use (DATETIME, BOOLEAN, JSON).
func sqliteKind(decl string) kind {
	t := strings.ToUpper(decl)
	switch {
	case strings.Contains(t, "BOOL"):
		return kindBool
	case strings.Contains(t, "INT"):
		return kindInt
	case strings.Contains(t, "DATETIME"), strings.Contains(t, "TIMESTAMP"):
		return kindDatetime
	case strings.HasPrefix(t, "DATE"):
		return kindDate
	case strings.HasPrefix(t, "TIME"):
		return kindTime
	case strings.Contains(t, "JSON"):
		return kindJSON
	case strings.Contains(t, "CHAR"), strings.Contains(t, "CLOB"), strings.Contains(t, "TEXT"),
		strings.Contains(t, "UUID"), strings.Contains(t, "ULID"):
		return kindText
	case strings.Contains(t, "BLOB"):
		return kindBlob
	case strings.Contains(t, "REAL"), strings.Contains(t, "FLOA"), strings.Contains(t, "DOUB"):
		return kindFloat
	case strings.Contains(t, "DEC"), strings.Contains(t, "NUM"):
		return kindDecimal
	}
	return kindOther
}

// postgresKind classifies a PostgreSQL type as format_type prints it.
func postgresKind(typ string) kind {
	t := strings.ToLower(typ)
	switch {
	case strings.HasSuffix(t, "[]"):
		return kindOther
	case t == "smallint" || t == "integer" || t == "bigint":
		return kindInt
	case t == "boolean":
		return kindBool
	case strings.HasPrefix(t, "timestamp") && strings.HasSuffix(t, "with time zone") && !strings.HasSuffix(t, "without time zone"):
		return kindDatetimeTZ
	case strings.HasPrefix(t, "timestamp"):
		return kindDatetime
	case t == "date":
		return kindDate
	case strings.HasPrefix(t, "time"):
		return kindTime
	case t == "json" || t == "jsonb":
		return kindJSON
	case t == "bytea":
		return kindBlob
	case t == "real" || t == "double precision":
		return kindFloat
	case strings.HasPrefix(t, "numeric"):
		return kindDecimal
	case t == "text" || strings.HasPrefix(t, "character") || t == "uuid" || t == "citext" || t == "name":
		return kindText
	}
	return kindOther
}

// mysqlKind classifies a MySQL/MariaDB column from its DATA_TYPE and COLUMN_TYPE.
func mysqlKind(dataType, columnType string) kind {
	dt := strings.ToLower(dataType)
	ct := strings.ToLower(columnType)
	switch dt {
	case "tinyint":
		if strings.HasPrefix(ct, "tinyint(1)") {
			return kindBool
		}
		return kindInt
	case "smallint", "mediumint", "int", "integer", "bigint", "year":
		return kindInt
	case "bool", "boolean":
		return kindBool
	case "datetime":
		return kindDatetime
	case "timestamp":
		return kindDatetimeTZ
	case "date":
		return kindDate
	case "time":
		return kindTime
	case "json":
		return kindJSON
	case "float", "double", "real":
		return kindFloat
	case "decimal", "numeric":
		return kindDecimal
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return kindBlob
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "uuid":
		return kindText
	}
	return kindOther
}
