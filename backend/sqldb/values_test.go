package sqldb

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestBind(t *testing.T) {
	col := func(k kind) *column { c := &column{kind: k}; c.Name = "c"; return c }
	ts := "2026-11-26T12:00:00.5+01:00"
	for _, tc := range []struct {
		name string
		f    flavor
		k    kind
		in   any
		want any
	}{
		{"datetime sqlite", flavorSQLite, kindDatetime, ts, "2026-11-26 11:00:00.5"},
		{"datetime postgres", flavorPostgres, kindDatetime, ts, "2026-11-26 11:00:00.5"},
		{"timestamptz postgres", flavorPostgres, kindDatetimeTZ, ts, "2026-11-26 11:00:00.5Z"},
		{"timestamp mysql", flavorMySQL, kindDatetimeTZ, "2026-11-26 11:00:00", "2026-11-26 11:00:00"},
		{"datetime ns sqlite", flavorSQLite, kindDatetime, "2026-11-26T11:00:00.123456789Z", "2026-11-26 11:00:00.123456789"},
		{"datetime ns mysql", flavorMySQL, kindDatetime, "2026-11-26T11:00:00.123456789Z", "2026-11-26 11:00:00.123456"},
		{"date", flavorMySQL, kindDate, "2026-11-26", "2026-11-26"},
		{"zero date", flavorMySQL, kindDatetime, "0000-00-00 00:00:00", nil},
		{"unix seconds", flavorSQLite, kindDatetime, json.Number("1764158400"), "2025-11-26 12:00:00"},
		{"bool sqlite", flavorSQLite, kindBool, true, int64(1)},
		{"bool postgres from 0", flavorPostgres, kindBool, json.Number("0"), false},
		{"bool from string", flavorMySQL, kindBool, "true", true},
		{"int max", flavorPostgres, kindInt, json.Number("9223372036854775807"), int64(9223372036854775807)},
		{"uint64 stays text", flavorMySQL, kindInt, json.Number("18446744073709551615"), "18446744073709551615"},
		{"int from integral float", flavorSQLite, kindInt, 3.0, int64(3)},
		{"decimal keeps digits", flavorPostgres, kindDecimal, json.Number("1234.50"), "1234.50"},
		{"float", flavorMySQL, kindFloat, json.Number("4.25"), 4.25},
		{"json object", flavorPostgres, kindJSON, map[string]any{"a": json.Number("1")}, `{"a":1}`},
		{"json text stays", flavorSQLite, kindJSON, `{"a": 1}`, `{"a": 1}`},
		{"json plain string", flavorMySQL, kindJSON, "hello", `"hello"`},
		{"text from number", flavorSQLite, kindText, json.Number("12"), "12"},
		{"text from bool", flavorPostgres, kindText, true, "1"},
		{"text from object", flavorMySQL, kindText, []any{"a"}, `["a"]`},
		{"blob from base64", flavorPostgres, kindBlob, "AQID", []byte{1, 2, 3}},
		{"null", flavorSQLite, kindInt, nil, nil},
	} {
		got, err := bind(tc.f, col(tc.k), tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: bind(%#v) = %#v, %v; want %#v", tc.name, tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []any{"soon", "2026-13-01", true} {
		if _, err := bind(flavorSQLite, col(kindDatetime), bad); err == nil {
			t.Errorf("bind datetime %#v: want an error", bad)
		}
	}
}

func TestNormalize(t *testing.T) {
	col := func(k kind) *column { c := &column{kind: k}; c.Name = "c"; return c }
	for _, tc := range []struct {
		name string
		k    kind
		in   any
		src  source
		want any
	}{
		{"time", kindDatetime, time.Date(2026, 11, 26, 13, 0, 0, 5e8, time.FixedZone("", 3600)), fromScan, "2026-11-26T12:00:00.5Z"},
		{"zero time", kindDatetime, time.Time{}, fromScan, nil},
		{"sqlite text", kindDatetime, "2026-11-26 12:00:00", fromScan, "2026-11-26T12:00:00Z"},
		{"pg image", kindDatetime, "2026-11-26T12:00:00.123", fromImage, "2026-11-26T12:00:00.123Z"},
		{"mysql unix image", kindDatetimeTZ, json.Number("1764158400.250000"), fromImage, "2025-11-26T12:00:00.25Z"},
		{"zero date text", kindDatetime, "0000-00-00 00:00:00", fromImage, nil},
		{"date", kindDate, "2026-11-26", fromImage, "2026-11-26"},
		{"int", kindInt, int64(-5), fromScan, json.Number("-5")},
		{"numeric text", kindDecimal, []byte("1234.50"), fromScan, json.Number("1234.50")},
		{"not a number", kindDecimal, "NaN", fromScan, "NaN"},
		{"bool from 0/1", kindBool, json.Number("1"), fromImage, true},
		{"bool from int", kindBool, int64(0), fromScan, false},
		{"json text", kindJSON, `{"a":[1,null]}`, fromImage, map[string]any{"a": []any{json.Number("1"), nil}}},
		{"json invalid stays", kindJSON, `{oops`, fromImage, `{oops`},
		{"blob bytes", kindBlob, []byte{1, 2, 3}, fromScan, "AQID"},
		{"blob hex image", kindBlob, "010203", fromImage, "AQID"},
		{"blob pg image", kindBlob, `\x010203`, fromImage, "AQID"},
		{"unknown column", kindOther, []byte("x"), fromScan, "x"},
		{"float", kindFloat, 4.25, fromScan, json.Number("4.25")},
	} {
		if got := normalize(col(tc.k), tc.in, tc.src); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: normalize(%#v) = %#v, want %#v", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestKinds(t *testing.T) {
	for typ, want := range map[string]kind{
		"INTEGER": kindInt, "BIGINT": kindInt, "BOOLEAN": kindBool, "tinyint(1)": kindInt, "DATETIME": kindDatetime,
		"TIMESTAMP": kindDatetime, "DATE": kindDate, "TIME": kindTime, "JSON": kindJSON, "VARCHAR(26)": kindText,
		"TEXT": kindText, "BLOB": kindBlob, "REAL": kindFloat, "NUMERIC(12,2)": kindDecimal, "": kindOther,
	} {
		if got := sqliteKind(typ); got != want {
			t.Errorf("sqliteKind(%q) = %d, want %d", typ, got, want)
		}
	}
	for typ, want := range map[string]kind{
		"bigint": kindInt, "boolean": kindBool, "timestamp(3) without time zone": kindDatetime,
		"timestamp with time zone": kindDatetimeTZ, "date": kindDate, "time without time zone": kindTime,
		"jsonb": kindJSON, "bytea": kindBlob, "numeric(12,2)": kindDecimal, "double precision": kindFloat,
		"character varying(26)": kindText, "uuid": kindText, "integer[]": kindOther,
	} {
		if got := postgresKind(typ); got != want {
			t.Errorf("postgresKind(%q) = %d, want %d", typ, got, want)
		}
	}
	for types, want := range map[[2]string]kind{
		{"tinyint", "tinyint(1)"}: kindBool, {"tinyint", "tinyint(4)"}: kindInt, {"bigint", "bigint(20) unsigned"}: kindInt,
		{"datetime", "datetime(3)"}: kindDatetime, {"timestamp", "timestamp"}: kindDatetimeTZ, {"json", "json"}: kindJSON,
		{"longtext", "longtext"}: kindText, {"varbinary", "varbinary(16)"}: kindBlob, {"decimal", "decimal(12,2)"}: kindDecimal,
	} {
		if got := mysqlKind(types[0], types[1]); got != want {
			t.Errorf("mysqlKind(%q) = %d, want %d", types, got, want)
		}
	}
}
