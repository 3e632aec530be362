package capture

import (
	"bytes"
	"encoding/json"
	"testing"
)

func decodeNumbers(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

func TestAppendObject(t *testing.T) {
	row := map[string]any{
		"title": `Say "hi" <b>\ ünïcödé ` + "\u2028\t\x01", "id": json.Number("12345678901234567890"),
		"price": json.Number("19.99"), "ok": true, "gone": nil,
		"meta": map[string]any{"b": []any{json.Number("1"), "x"}},
		"n":    int64(-3), "bad": "a\xffb", "": "empty key",
	}
	got, err := appendObject(nil, row)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(decodeNumbers(t, got))
	wb, _ := json.Marshal(decodeNumbers(t, want))
	if string(gb) != string(wb) {
		t.Errorf("appendObject round trip:\n got %s\nwant %s", gb, wb)
	}
	if !bytes.HasPrefix(got, []byte(`{"":"empty key","bad":`)) {
		t.Errorf("keys are not sorted: %s", got)
	}
}
