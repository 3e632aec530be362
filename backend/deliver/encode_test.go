package deliver

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

func TestFindKey(t *testing.T) {
	fields := []string{"ulid", "uuid", "slug", "name", "title"}
	k := newKeyFinder(fields)
	for _, tc := range []struct {
		img       string
		wantField string
		wantValue string
	}{
		{`{"id":1,"ulid":"01HZ","title":"T"}`, "ulid", `"01HZ"`},
		{`{"title":"T","slug":"s"}`, "slug", `"s"`},
		{`{"ulid":null,"uuid":"u-1"}`, "uuid", `"u-1"`},
		{`{"name":12345678901234567890}`, "name", `12345678901234567890`},
		{`{"name":-1.5e3,"title":"x"}`, "name", `-1.5e3`},
		{`{"ulid":true,"slug":{"a":"b"},"title":"t"}`, "title", `"t"`},
		{`{"meta":{"ulid":"nested","x":[1,"]}",{"y":"}"}]},"slug":"outer"}`, "slug", `"outer"`},
		{`{"u\u006cid":"escaped-key","title":"t"}`, "ulid", `"escaped-key"`},
		{`{"title":"say \"hi\"","x":"\\"}`, "title", `"say \"hi\""`},
		{` { "slug" : "spaced" , "id" : 3 } `, "slug", `"spaced"`},
		{`{"id":1}`, "", ""},
		{`{}`, "", ""},
		{`[1,2]`, "", ""},
		{`{"slug":"unterminated`, "", ""},
		{`{"slug":}`, "", ""},
		{``, "", ""},
	} {
		fi, val := k.find([]byte(tc.img))
		gotField := ""
		if fi >= 0 {
			gotField = fields[fi]
		}
		if gotField != tc.wantField || string(val) != tc.wantValue {
			t.Errorf("findKey(%s) = %q %s, want %q %s", tc.img, gotField, val, tc.wantField, tc.wantValue)
		}
	}
}

// FuzzFindKey compares findKey with encoding/json on valid objects.
func FuzzFindKey(f *testing.F) {
	f.Add(`{"ulid":"a","slug":"b"}`)
	f.Add(`{"meta":{"slug":"x"},"title":"y","n":[1,{"a":"]"}]}`)
	f.Add(`{"name":1e5,"slug":null}`)
	fields := []string{"ulid", "slug", "name", "title"}
	k := newKeyFinder(fields)
	f.Fuzz(func(t *testing.T, img string) {
		var m map[string]json.RawMessage
		fi, val := k.find([]byte(img))
		if err := json.Unmarshal([]byte(img), &m); err != nil {
			return // findKey may answer anything for invalid JSON, but must not panic
		}
		if strings.Count(img, `"`) != strings.Count(string(mustCompact(t, img)), `"`) {
			return
		}
		want, wantVal := -1, ""
		for i, f := range fields {
			v, ok := m[f]
			if ok && len(v) > 0 && usableKey(v[0]) {
				want, wantVal = i, string(v)
				break
			}
		}
		if hasDuplicateKeys(img) {
			return
		}
		if fi != want || (want >= 0 && string(val) != wantVal) {
			t.Errorf("findKey(%s) = %d %s, want %d %s", img, fi, val, want, wantVal)
		}
	})
}

func mustCompact(t *testing.T, s string) []byte {
	var v any
	_ = json.Unmarshal([]byte(s), &v)
	b, _ := json.Marshal(v)
	return b
}

// hasDuplicateKeys reports whether a top-level key occurs twice (encoding/json keeps the
// last, findKey the first; the Pump never writes such images).
func hasDuplicateKeys(s string) bool {
	dec := json.NewDecoder(strings.NewReader(s))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		k, _ := tok.(string)
		if seen[k] {
			return true
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return false
}

// sampleRows returns n queue rows with images like a Laravel posts table.
func sampleRows(n int) []capture.Row {
	rows := make([]capture.Row, n)
	ms := time.Date(2026, 11, 26, 12, 0, 0, 123e6, time.UTC).UnixMilli()
	for i := range rows {
		img := fmt.Sprintf(`{"body":"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation.","created_at":"2026-11-26T12:00:00.123Z","id":%d,"meta":{"tags":["news","go"],"featured":false},"price":"19.99","published":true,"published_at":"2026-11-26T12:00:00Z","rating":4.5,"slug":"post-number-%d","title":"Post number %d","ulid":"01JDQ%021d","views":1234}`, i, i, i, i)
		op := protocol.EventUpdated
		if i%10 == 9 {
			op = protocol.EventDeleted
		}
		rows[i] = capture.Row{ID: int64(i + 1), Op: op, Image: []byte(img), ChangedAtMS: ms + int64(i)}
	}
	return rows
}

func encodeBatch(e *encoder, b []byte, rows []capture.Row) []byte {
	b = e.begin(b, "01JDQZ6X3N8Y5V7W9K2M4P6R8T")
	n := 0
	for i := range rows {
		var o outcome
		if b, o = e.add(b, n, &rows[i]); o == added {
			n++
		}
	}
	return e.end(b)
}

func TestEncoder_Batch(t *testing.T) {
	rows := sampleRows(20)
	rows[3].OriginPlatformID = 2 // echo
	rows[4].OriginPlatformID = 3
	rows[5].Image = []byte(`{"id":5,"body":"no key here"}`)
	e := newEncoder("posts", []string{"ulid", "slug"}, 1, 7, 2)
	body := encodeBatch(e, nil, rows)
	b, err := protocol.DecodeBatch(body)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if b.BatchID != "01JDQZ6X3N8Y5V7W9K2M4P6R8T" || b.SourcePlatformID != 1 || b.SyncID != 7 || len(b.Changes) != 18 {
		t.Fatalf("batch %s/%d/%d with %d changes", b.BatchID, b.SourcePlatformID, b.SyncID, len(b.Changes))
	}
	for _, c := range b.Changes {
		wantOrigin := int64(1)
		if c.Seq == 5 {
			wantOrigin = 3
		}
		if c.OriginPlatformID != wantOrigin || c.Key.Field != "ulid" || c.Model != "posts" ||
			c.ChangedAt[:20] != "2026-11-26T12:00:00." || !strings.HasSuffix(c.ChangedAt, "Z") {
			t.Errorf("change %+v", c)
		}
		if (c.EventType == protocol.EventDeleted) != (c.Data == nil) {
			t.Errorf("change %d: %s with data %v", c.Seq, c.EventType, c.Data)
		}
		if c.Data != nil && c.Data["views"] != json.Number("1234") {
			t.Errorf("change %d: views = %#v", c.Seq, c.Data["views"])
		}
	}
	// An empty batch is valid too.
	if _, err := protocol.DecodeBatch(e.end(e.begin(nil, "x"))); err != nil {
		t.Error(err)
	}
}

func BenchmarkEncodeBatch1000(b *testing.B) {
	rows := sampleRows(1000)
	e := newEncoder("posts", DefaultUniqueIdentifierFields, 1, 7, 2)
	body := encodeBatch(e, nil, rows)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		buf := getBody()
		*buf = encodeBatch(e, *buf, rows)
		putBody(buf)
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "rows/s")
}
