package sqldb

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// rawTestTable has a column of every kind.
func rawTestTable() *table {
	t := newTable("things")
	for _, c := range []struct {
		name string
		k    kind
	}{
		{"other", kindOther}, {"txt", kindText}, {"n", kindInt}, {"f", kindFloat}, {"dec", kindDecimal},
		{"flag", kindBool}, {"dt", kindDatetime}, {"ts", kindDatetimeTZ}, {"d", kindDate}, {"tm", kindTime},
		{"doc", kindJSON}, {"bin", kindBlob}, {`odd "name"`, kindText},
	} {
		t.addColumn(protocol.Column{Name: c.name}, c.k)
	}
	t.finish()
	return t
}

// rawImages are trigger images as the three dialects write them, and odd ones.
var rawImages = []string{
	`{"other": 1, "txt": "x\"y\\z\n\u00fc", "n": 9223372036854775807, "f": 0.5, "dec": "12.50", "flag": 1,
	  "dt": "2026-11-26 12:00:00.123", "ts": 1764158400.25, "d": "2026-11-26", "tm": "12:00:00",
	  "doc": "{\"a\": [1, 2.50, {\"b\": null}], \"z\": \"\u00fc\"}", "bin": "00FF10", "odd \"name\"": "v"}`,
	`{"other":null,"txt":null,"n":null,"f":null,"dec":null,"flag":null,"dt":null,"ts":null,"d":null,"tm":null,"doc":null,"bin":null}`,
	`{"flag":true,"doc":{"a":[1,2,{"b":"<&>"}]},"ts":"2026-11-26T12:00:00.250+01:00","dt":"2026-11-26T12:00:00","bin":"\\x00ff"}`,
	`{"flag":"false","doc":"\"just a string\"","txt":"123","n":"42","dec":"not a number","f":"1e3"}`,
	`{"flag":0,"doc":"not json","txt":"true","d":"0000-00-00","dt":"0000-00-00 00:00:00","tm":"25:61"}`,
	`{"doc":"123","other":"<b>&amp;</b>","txt":"\ud83d\ude00 emoji","unknown":"x","n":-0.0}`,
	`{"doc":"[1, 2] ","flag":"1","ts":"2026-11-26 12:00:00+00","txt":""}`,
	"{\"txt\":\"bad \xff utf8\",\"other\":\"\xc3\",\"doc\":\"{\\\"k\\\":\\\"\xfe\\\"}\"}",
	` { "txt" : "spaces" , "n" : 1 } `,
	`{}`,
}

func decodeForTest(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

// TestCanonicalImage_MatchesDecodeImage checks that the raw path gives the values the
// decoding path gives, for a known table and for an unknown one.
func TestCanonicalImage_MatchesDecodeImage(t *testing.T) {
	for _, tbl := range []*table{rawTestTable(), nil} {
		for _, img := range rawImages {
			want, wantComplete, err := decodeImage(tbl, []byte(img))
			if err != nil {
				t.Fatalf("decodeImage(%s): %v", img, err)
			}
			got, complete, err := canonicalImage(nil, tbl, []byte(img))
			if err != nil {
				t.Fatalf("canonicalImage(%s): %v", img, err)
			}
			if !json.Valid(got) {
				t.Fatalf("canonicalImage(%s) = %s: not JSON", img, got)
			}
			if complete != wantComplete {
				t.Errorf("complete(%s) = %v, want %v", img, complete, wantComplete)
			}
			if m := decodeForTest(t, got); !reflect.DeepEqual(m, want) {
				t.Errorf("canonicalImage(%s)\n = %#v\nwant %#v", img, m, want)
			}
		}
	}
}

func TestCanonicalImage_Malformed(t *testing.T) {
	for _, img := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a":tru}`,
		`{"a":{"b":1}`, `{"a":"x}`, `{"a":1}x`, `{"a":[1,}`, `{"a":01}`, `{"":"\0"}`, "{\"a\":\"\x01\"}", `{"a":"\u12"}`} {
		if out, _, err := canonicalImage(nil, rawTestTable(), []byte(img)); err == nil {
			t.Errorf("canonicalImage(%s) = %s, want an error", img, out)
		}
	}
}

func FuzzCanonicalImage(f *testing.F) {
	for _, img := range rawImages {
		f.Add([]byte(img))
	}
	tbl := rawTestTable()
	f.Fuzz(func(t *testing.T, img []byte) {
		want, _, werr := decodeImage(tbl, img)
		got, _, err := canonicalImage(nil, tbl, img)
		if err != nil {
			return // the raw path may refuse more (it checks the whole object); never less
		}
		if werr != nil {
			t.Fatalf("canonicalImage accepted %q, decodeImage refused it: %v", img, werr)
		}
		m := decodeForTest(t, got)
		for k, v := range want {
			// decodeJSON takes a document followed by a stray } or ] ("1}") for the document;
			// the raw path keeps such a text as the string it is.
			if s, ok := m[k].(string); ok && tbl.byName[k] != nil && tbl.byName[k].kind == kindJSON && !json.Valid([]byte(s)) {
				m[k] = v
			}
		}
		if !reflect.DeepEqual(m, want) {
			t.Fatalf("canonicalImage(%q)\n = %#v\nwant %#v", img, m, want)
		}
	})
}

func BenchmarkCanonicalImage(b *testing.B) {
	tbl := rawTestTable()
	img := []byte(`{"other":1,"txt":"Lorem ipsum dolor sit amet, consectetur adipiscing elit","n":42,"f":4.5,` +
		`"dec":19.99,"flag":1,"dt":"2026-11-26 12:00:00","ts":"2026-11-26T12:00:00.123Z","doc":"{\"tags\":[\"news\",\"go\"]}",` +
		`"d":"2026-11-26","tm":"12:00:00"}`)
	b.Run("raw", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _, _ = canonicalImage(buf[:0], tbl, img)
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			_, _, _ = decodeImage(tbl, img)
		}
	})
}
