package sqldb

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// rawSamples are values as drivers return them from Scan into any.
var rawSamples = []any{
	nil, "", "abc", "Abc ", "2026-11-26 12:00:00", "2026-11-26T12:00:00.5+02:00", "2026-11-26",
	"0000-00-00 00:00:00", "10000-01-01 00:00:00", "12.50", "007", "1e3", "-0", "+5", ".5", "12:30:00",
	`{"b":1,"a":[1,2.50,"x",null,true,false,{}]}`, `{"a":1,"a":2}`, ` [ ] `, `"str"`, `"2026-11-26 12:00:00"`,
	`invalid{`, `{"k":"\u00e9\n\ud800"}`, "\xff\xfe", `{"x":"\xff"}`, `[1,]`, `{"a" 1}`, `01`, `-`, `1.`, `1e`,
	`{"a":{"b":{"c":[[]]}}}`, "\t{ \"z\" : -0.0e+2 }\n", `[1.5E-7, 1E400]`, "null", "true",
	[]byte("abc"), []byte("12.50"), []byte(`{"b":1}`), []byte{0, 1, 2},
	int64(0), int64(1), int64(-5), int64(1700000000), int64(math.MaxInt64),
	0.1, 1e21, -0.0, 2.5, math.NaN(), math.Inf(1), float32(0.1),
	true, false,
	time.Time{}, time.Date(2026, 11, 26, 12, 0, 0, 999, time.UTC), time.Date(2026, 11, 26, 12, 0, 0, 0, time.FixedZone("x", 3600)),
	time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC),
	json.Number("12.50"), json.Number("3"), map[string]any{"a": json.Number("1")}, []any{"x"},
}

var allKinds = []kind{kindOther, kindText, kindInt, kindFloat, kindDecimal, kindBool, kindDatetime, kindDatetimeTZ, kindDate, kindTime, kindJSON, kindBlob}

// TestAppendRawCanonical holds the fast encoding of scanned values to the definition:
// AppendCanonical of the value normalize makes.
func TestAppendRawCanonical(t *testing.T) {
	for _, k := range allKinds {
		c := &column{kind: k}
		for _, v := range rawSamples {
			checkRaw(t, c, v)
		}
	}
}

func checkRaw(t *testing.T, c *column, v any) {
	t.Helper()
	fast := appendRawCanonical(nil, c, v)
	slow := AppendCanonical(nil, normalize(c, scanned(c, v), fromScan))
	if !bytes.Equal(fast, slow) {
		t.Errorf("kind %d, %T %#v:\n fast %q\n slow %q", c.kind, v, v, fast, slow)
	}
}

func FuzzAppendRawCanonical(f *testing.F) {
	for _, v := range rawSamples {
		if s, ok := v.(string); ok {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, k := range allKinds {
			checkRaw(t, &column{kind: k}, s)
			checkRaw(t, &column{kind: k}, []byte(s))
		}
	})
}
