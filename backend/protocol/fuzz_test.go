package protocol_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// FuzzParseSignatureHeader checks that the parser never panics and that what it accepts
// are exactly the 32-byte signatures of well-formed v1 entries.
func FuzzParseSignatureHeader(f *testing.F) {
	sig := protocol.Signature([]byte("k"), []byte("c"))
	for _, s := range []string{"", sig, sig + " " + sig, "v1,", "v1", ",", "v2,abc " + sig, "v1,@@", " \t ", "v1,=" + sig} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		sigs, err := protocol.ParseSignatureHeader(header)
		if err != nil {
			if protocol.CodeOf(err) != protocol.CodeUnauthorized {
				t.Fatalf("error with code %s", protocol.CodeOf(err))
			}
			return
		}
		if len(sigs) == 0 {
			t.Fatal("accepted a header without signatures")
		}
		for _, s := range sigs {
			if len(s) != 32 {
				t.Fatalf("signature of %d bytes", len(s))
			}
			if !bytes.Contains([]byte(header), []byte("v1,"+base64.StdEncoding.EncodeToString(s))) {
				t.Fatalf("signature not present in header %q", header)
			}
		}
	})
}

// FuzzDecodeBatch checks that the batch decoder never panics, and that an accepted batch
// survives a re-encode and decodes to the same value.
func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{
		`{"batch_id":"01JD","source_platform_id":1,"sync_id":7,"changes":[{"seq":1234,"event_type":"updated","model":"posts","key":{"field":"ulid","value":"01HZ"},"data":{"ulid":"01HZ","title":"Hello","slug":"hello"},"should_delete":false,"origin_platform_id":1,"changed_at":"2026-11-26T12:00:00.123Z"}]}`,
		`{"batch_id":"b","source_platform_id":1,"sync_id":1,"changes":[{"seq":1,"event_type":"deleted","model":"m","key":{"field":"id","value":12},"should_delete":false,"origin_platform_id":1,"changed_at":"2026-11-26T12:00:00Z"}]}`,
		`{"batch_id":"b","source_platform_id":1,"sync_id":1,"changes":[],"extra":1}`,
		`{"batch_id":"b","source_platform_id":1,"sync_id":1,"changes":null}`,
		`{}`, `[]`, `null`, `{"batch_id":"a.b"}`, `{"batch_id":"b","source_platform_id":1,"sync_id":1} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := protocol.DecodeBatch(body)
		if err != nil {
			if protocol.CodeOf(err) != protocol.CodeBadRequest {
				t.Fatalf("error with code %s: %v", protocol.CodeOf(err), err)
			}
			return
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		b2, err := protocol.DecodeBatch(again)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", again, err)
		}
		third, _ := json.Marshal(b2)
		if !bytes.Equal(again, third) {
			t.Fatalf("not stable:\n%s\n%s", again, third)
		}
	})
}

// FuzzDecodeBatchMatchesStdlib checks that the fast decoder accepts exactly what the standard
// library's strict decoder accepts, and decodes it to the same value.
func FuzzDecodeBatchMatchesStdlib(f *testing.F) {
	f.Add([]byte(`{"batch_id":"b","source_platform_id":1,"sync_id":1,"changes":[{"seq":1,"event_type":"created","model":"m","key":{"field":"k","value":"v"},"data":{"k":"v","n":1.50,"u":"\u00e9"},"should_delete":false,"origin_platform_id":1,"changed_at":"2026-11-26T12:00:00Z"}]}`))
	f.Add([]byte(`{"batch_id":"b","source_platform_id":1,"sync_id":1,"changes":[],"x":1}`))
	f.Add([]byte(`{"batch_id":"b","source_platform_id":1,"sync_id":1,"changes":[]} x`))
	f.Add([]byte("{\"batch_id\":\"b\xff\",\"source_platform_id\":1,\"sync_id\":1,\"changes\":[]}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, errFast := protocol.DecodeBatch(body)
		var std protocol.Batch
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		errStd := dec.Decode(&std)
		if errStd == nil {
			if _, err := dec.Token(); err != io.EOF {
				errStd = errors.New("trailing data")
			}
		}
		if errStd == nil {
			errStd = std.Validate()
		}
		if (errFast == nil) != (errStd == nil) {
			t.Fatalf("fast decoder err=%v, standard library err=%v for %q", errFast, errStd, body)
		}
		if errFast == nil {
			a, _ := json.Marshal(fast)
			b, _ := json.Marshal(&std)
			if !bytes.Equal(a, b) {
				t.Fatalf("decoded differently:\n%s\n%s", a, b)
			}
		}
	})
}
