package protocol_test

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

var fixedNow = time.Unix(1_764_158_400, 0)

func clock() time.Time { return fixedNow }

func TestDataContent(t *testing.T) {
	got := string(protocol.DataContent("msg_1", 1614265330, []byte(`{"a":1}`)))
	if want := `msg_1.1614265330.{"a":1}`; got != want {
		t.Fatalf("DataContent = %q, want %q", got, want)
	}
	if got := string(protocol.DataContent("x", 0, nil)); got != "x.0." {
		t.Fatalf("empty body: %q", got)
	}
}

func TestControlContent(t *testing.T) {
	for _, tt := range []struct {
		method, uri, body, want string
	}{
		{"GET", "/api/status", "", "id1.1700000000.GET./api/status."},
		{"put", "/api/state", `{"revision":1}`, `id1.1700000000.PUT./api/state.{"revision":1}`},
		{"GET", "/api/syncs?source=1&target=2", "", "id1.1700000000.GET./api/syncs?source=1&target=2."},
		{"DELETE", "/api/platforms/3", "", "id1.1700000000.DELETE./api/platforms/3."},
	} {
		t.Run(tt.method+" "+tt.uri, func(t *testing.T) {
			got := string(protocol.ControlContent("id1", 1700000000, tt.method, tt.uri, []byte(tt.body)))
			if got != tt.want {
				t.Fatalf("ControlContent = %q, want %q", got, tt.want)
			}
		})
	}
}

// The official Standard Webhooks test vector.
func TestSignature_StandardWebhooksVector(t *testing.T) {
	secret, err := base64.StdEncoding.DecodeString(strings.TrimPrefix("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	content := protocol.DataContent("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if got, want := protocol.Signature(secret, content), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Signature = %q, want %q", got, want)
	}
	v := protocol.Verifier{Now: func() time.Time { return time.Unix(1614265330, 0) }}
	h := protocol.Headers{ID: "msg_p5jXN8AQM9LWM0D4loKWxJek", Timestamp: "1614265330", Signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
	if err := v.VerifyData(h, []byte(`{"test": 2432232314}`), secret); err != nil {
		t.Fatalf("VerifyData: %v", err)
	}
}

func TestKeys(t *testing.T) {
	syncToken := strings.Repeat("s", 32)
	platformToken := strings.Repeat("p", 32)
	t.Run("boot", func(t *testing.T) {
		if got := string(protocol.BootKey(syncToken)); got != syncToken {
			t.Fatalf("BootKey = %q", got)
		}
	})
	t.Run("control is platform token then sync token", func(t *testing.T) {
		if got := string(protocol.ControlKey(platformToken, syncToken)); got != platformToken+syncToken {
			t.Fatalf("ControlKey = %q", got)
		}
	})
	t.Run("pair", func(t *testing.T) {
		ctl := protocol.ControlKey(platformToken, syncToken)
		// Computed independently with: printf 'mooxsync/v1 pair 1 2' | openssl dgst -sha256 -hmac "$(ctl)" -binary | base64
		want := "7fjchPBPdOq0/4Meay1acl1uhjJkc77FhgnDdnRFYlg="
		got := protocol.EncodeKey(protocol.PairKey(ctl, 1, 2))
		if got != want {
			t.Fatalf("PairKey(1->2) = %s, want %s", got, want)
		}
		if protocol.EncodeKey(protocol.PairKey(ctl, 2, 1)) == got {
			t.Fatal("PairKey must depend on direction")
		}
		if protocol.EncodeKey(protocol.PairKey(protocol.ControlKey(platformToken, syncToken+"x"), 1, 2)) == got {
			t.Fatal("PairKey must depend on the target's control key")
		}
	})
	t.Run("decode", func(t *testing.T) {
		k := protocol.PairKey([]byte("k"), 1, 2)
		back, err := protocol.DecodeKey(protocol.EncodeKey(k))
		if err != nil || string(back) != string(k) {
			t.Fatalf("DecodeKey round trip: %v", err)
		}
		if _, err := protocol.DecodeKey("c2hvcnQ="); err == nil {
			t.Fatal("DecodeKey accepted a short key")
		}
		if _, err := protocol.DecodeKey("%%%"); err == nil {
			t.Fatal("DecodeKey accepted bad base64")
		}
	})
	t.Run("tokens", func(t *testing.T) {
		tok, err := protocol.GenerateToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != 43 || protocol.CheckToken(tok) != nil {
			t.Fatalf("GenerateToken gave %d chars", len(tok))
		}
		if protocol.CheckToken(strings.Repeat("a", 31)) == nil {
			t.Fatal("CheckToken accepted 31 characters")
		}
	})
}

func TestVerifier_Data(t *testing.T) {
	key := []byte("pair-key-for-tests-0123456789abcdef")
	other := []byte("another-key-0123456789abcdef012345")
	body := []byte(`{"batch_id":"01J","changes":[]}`)
	s := protocol.Signer{Now: clock}
	v := protocol.Verifier{Now: clock}
	good := s.SignData("01JBATCH", body, key)

	if err := v.VerifyData(good, body, key); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	mustCode := func(t *testing.T, err error, code protocol.Code) {
		t.Helper()
		if err == nil {
			t.Fatalf("accepted, want %s", code)
		}
		if got := protocol.CodeOf(err); got != code {
			t.Fatalf("code %s (%v), want %s", got, err, code)
		}
	}
	t.Run("wrong key", func(t *testing.T) {
		mustCode(t, v.VerifyData(good, body, other), protocol.CodeUnauthorized)
	})
	t.Run("tampered body", func(t *testing.T) {
		mustCode(t, v.VerifyData(good, append([]byte{}, append(body, ' ')...), key), protocol.CodeUnauthorized)
	})
	t.Run("changed id", func(t *testing.T) {
		h := good
		h.ID = "01JOTHER"
		mustCode(t, v.VerifyData(h, body, key), protocol.CodeUnauthorized)
	})
	t.Run("stale timestamp", func(t *testing.T) {
		old := protocol.Signer{Now: func() time.Time { return fixedNow.Add(-301 * time.Second) }}.SignData("b1", body, key)
		mustCode(t, v.VerifyData(old, body, key), protocol.CodeStaleTimestamp)
	})
	t.Run("future timestamp", func(t *testing.T) {
		fut := protocol.Signer{Now: func() time.Time { return fixedNow.Add(301 * time.Second) }}.SignData("b1", body, key)
		mustCode(t, v.VerifyData(fut, body, key), protocol.CodeStaleTimestamp)
	})
	t.Run("edge of window", func(t *testing.T) {
		for _, d := range []time.Duration{-300 * time.Second, 300 * time.Second} {
			h := protocol.Signer{Now: func() time.Time { return fixedNow.Add(d) }}.SignData("b1", body, key)
			if err := v.VerifyData(h, body, key); err != nil {
				t.Fatalf("offset %s refused: %v", d, err)
			}
		}
	})
	t.Run("several entries, one valid", func(t *testing.T) {
		h := good
		bad := protocol.Signature(other, protocol.DataContent(h.ID, fixedNow.Unix(), body))
		h.Signature = bad + " v2,abc " + good.Signature
		if err := v.VerifyData(h, body, key); err != nil {
			t.Fatalf("refused: %v", err)
		}
		h.Signature = bad + " " + bad
		mustCode(t, v.VerifyData(h, body, key), protocol.CodeUnauthorized)
	})
	t.Run("rotation: two keys on the receiver", func(t *testing.T) {
		if err := v.VerifyData(good, body, other, key); err != nil {
			t.Fatalf("refused with the second key valid: %v", err)
		}
	})
	t.Run("two keys on the sender", func(t *testing.T) {
		h := s.SignData("b2", body, other, key)
		if n := len(strings.Fields(h.Signature)); n != 2 {
			t.Fatalf("%d entries, want 2", n)
		}
		if err := v.VerifyData(h, body, key); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
	for name, sig := range map[string]string{
		"empty":           "",
		"spaces only":     "   ",
		"no comma":        "v1" + strings.TrimPrefix(good.Signature, "v1,"),
		"bad base64":      "v1,not*base64",
		"short signature": "v1,c2hvcnQ=",
		"unpadded":        strings.TrimRight(good.Signature, "="),
		"only other vers": "v2," + strings.TrimPrefix(good.Signature, "v1,"),
	} {
		t.Run("malformed header "+name, func(t *testing.T) {
			h := good
			h.Signature = sig
			mustCode(t, v.VerifyData(h, body, key), protocol.CodeUnauthorized)
		})
	}
	for name, id := range map[string]string{
		"empty id":    "",
		"id too long": strings.Repeat("a", 65),
		"id bad char": "a.b",
	} {
		t.Run(name, func(t *testing.T) {
			h := good
			h.ID = id
			mustCode(t, v.VerifyData(h, body, key), protocol.CodeUnauthorized)
		})
	}
	for name, ts := range map[string]string{"empty": "", "not a number": "12a", "float": "1.5"} {
		t.Run("timestamp "+name, func(t *testing.T) {
			h := good
			h.Timestamp = ts
			mustCode(t, v.VerifyData(h, body, key), protocol.CodeUnauthorized)
		})
	}
}

func TestVerifier_Control(t *testing.T) {
	key := protocol.ControlKey(strings.Repeat("p", 43), strings.Repeat("s", 43))
	body := []byte(`{"revision":3}`)
	s := protocol.Signer{Now: clock, NewID: func() string { return "01JCTRL" }}
	v := protocol.Verifier{Now: clock}
	h := s.SignControl("PUT", "/api/state?dry=1", body, key)
	if h.ID != "01JCTRL" || h.Timestamp != strconv.FormatInt(fixedNow.Unix(), 10) {
		t.Fatalf("headers %+v", h)
	}
	if err := v.VerifyControl(h, "PUT", "/api/state?dry=1", body, key); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	for name, tc := range map[string]struct {
		method, uri string
		body        []byte
		key         []byte
	}{
		"changed method": {"POST", "/api/state?dry=1", body, key},
		"changed path":   {"PUT", "/api/status?dry=1", body, key},
		"changed query":  {"PUT", "/api/state?dry=0", body, key},
		"dropped query":  {"PUT", "/api/state", body, key},
		"tampered body":  {"PUT", "/api/state?dry=1", []byte(`{"revision":4}`), key},
		"wrong key":      {"PUT", "/api/state?dry=1", body, protocol.BootKey(strings.Repeat("s", 43))},
	} {
		t.Run(name, func(t *testing.T) {
			err := v.VerifyControl(h, tc.method, tc.uri, tc.body, tc.key)
			if protocol.CodeOf(err) != protocol.CodeUnauthorized {
				t.Fatalf("got %v, want unauthorized", err)
			}
		})
	}
	t.Run("lower-case method is signed upper-case", func(t *testing.T) {
		h := s.SignControl("get", "/api/status", nil, key)
		if err := v.VerifyControl(h, "GET", "/api/status", nil, key); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a data-plane signature does not open the control plane", func(t *testing.T) {
		d := s.SignData("01JCTRL", body, key)
		if err := v.VerifyControl(d, "PUT", "/api/state?dry=1", body, key); err == nil {
			t.Fatal("accepted")
		}
	})
}

func TestParseSignatureHeader(t *testing.T) {
	sig := protocol.Signature([]byte("k"), []byte("c"))
	for _, tt := range []struct {
		name   string
		header string
		n      int
		ok     bool
	}{
		{"one", sig, 1, true},
		{"two", sig + " " + sig, 2, true},
		{"extra spaces", "  " + sig + "   " + sig + " ", 2, true},
		{"unknown version ignored", "v9,xyz " + sig, 1, true},
		{"empty", "", 0, false},
		{"no comma", "v1abc", 0, false},
		{"bad base64", "v1,@@@@", 0, false},
		{"empty signature", "v1,", 0, false},
		{"only unknown versions", "v2,abc", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sigs, err := protocol.ParseSignatureHeader(tt.header)
			if (err == nil) != tt.ok || len(sigs) != tt.n {
				t.Fatalf("got %d sigs, err %v; want %d, ok=%v", len(sigs), err, tt.n, tt.ok)
			}
		})
	}
}

func TestError(t *testing.T) {
	err := protocol.Errorf(protocol.CodeReplayed, "seen")
	if !errors.Is(err, &protocol.Error{Code: protocol.CodeReplayed}) {
		t.Fatal("errors.Is by code failed")
	}
	if err.Status != 409 {
		t.Fatalf("status %d", err.Status)
	}
	wrapped := errors.Join(errors.New("ctx"), err)
	if protocol.CodeOf(wrapped) != protocol.CodeReplayed {
		t.Fatal("CodeOf did not unwrap")
	}
	if e := protocol.AsError(errors.New("secret detail")); e.Code != protocol.CodeInternal || strings.Contains(e.Message, "secret") {
		t.Fatalf("AsError leaked: %+v", e)
	}
	if e := protocol.DecodeError(403, []byte(`{"error":{"code":"unauthorized","message":"no"}}`)); e.Code != protocol.CodeUnauthorized || e.Status != 403 {
		t.Fatalf("DecodeError: %+v", e)
	}
	if e := protocol.DecodeError(502, []byte("<html>")); e.Code != protocol.CodeInternal {
		t.Fatalf("DecodeError non-envelope: %+v", e)
	}
	for _, c := range protocol.Codes {
		if c.DefaultStatus() < 400 {
			t.Fatalf("%s has status %d", c, c.DefaultStatus())
		}
	}
}
