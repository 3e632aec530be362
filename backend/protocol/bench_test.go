package protocol_test

import (
	"bytes"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

func benchBody(n int) []byte {
	return bytes.Repeat([]byte(`{"seq":1,"event_type":"updated","model":"posts","key":{"field":"ulid","value":"01HZ"}},`), n/80+1)[:n]
}

func BenchmarkSignData(b *testing.B) {
	key := protocol.PairKey([]byte("control-key"), 1, 2)
	body := benchBody(256 << 10)
	s := protocol.Signer{}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		s.SignData("01JDBATCH", body, key)
	}
}

func BenchmarkVerifyData(b *testing.B) {
	key := protocol.PairKey([]byte("control-key"), 1, 2)
	body := benchBody(256 << 10)
	h := protocol.Signer{}.SignData("01JDBATCH", body, key)
	v := protocol.Verifier{}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := v.VerifyData(h, body, key); err != nil {
			b.Fatal(err)
		}
	}
}
