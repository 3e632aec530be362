package agent_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

func TestHealth(t *testing.T) {
	ta := mustStartAgent(t, nil)
	req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/api/health", nil)
	res := ta.do(req)
	if got, want := string(res.Body), `{"status":"ok","version":"9.9.9-test","enrolled":false,"platform_id":null}`+"\n"; got != want {
		t.Fatalf("health before enrollment = %s, want %s", got, want)
	}
	ta.enroll()
	res = ta.do(req)
	if got, want := string(res.Body), `{"status":"ok","version":"9.9.9-test","enrolled":true,"platform_id":2}`+"\n"; got != want {
		t.Fatalf("health after enrollment = %s, want %s", got, want)
	}
}

func TestEnroll(t *testing.T) {
	enrollBody := func(id int64, token string) []byte {
		return mustJSON(t, protocol.EnrollRequest{Platform: testPlatform(id), PlatformToken: token})
	}
	enroll := func(ta *testAgent, body, key []byte) response {
		return ta.controlWith(protocol.Signer{}, http.MethodPost, "/api/enroll", body, key)
	}

	t.Run("control plane before enrollment is not_enrolled", func(t *testing.T) {
		ta := mustStartAgent(t, nil)
		for _, uri := range []string{"/api/state", "/api/status", "/api/models", "/api/platforms", "/api/syncs"} {
			res := ta.control(http.MethodGet, uri, nil)
			if res.Status != http.StatusConflict || res.errorCode() != protocol.CodeNotEnrolled {
				t.Errorf("GET %s = %d %s, want 409 not_enrolled", uri, res.Status, res.Body)
			}
		}
	})

	t.Run("K_boot enrolls once, then opens nothing else", func(t *testing.T) {
		ta := mustStartAgent(t, nil)
		res := enroll(ta, enrollBody(selfID, testPlatformToken), bootKey())
		if res.Status != http.StatusOK {
			t.Fatalf("enroll = %d %s", res.Status, res.Body)
		}
		if got, want := string(res.Body), `{"platform_id":2,"agent_version":"9.9.9-test","tls_fingerprint":"sha256:test"}`+"\n"; got != want {
			t.Fatalf("enroll body = %s, want %s", got, want)
		}
		if strings.Contains(string(res.Body), testPlatformToken) {
			t.Fatal("enroll answer shows the platform token")
		}

		// K_boot no longer opens the control plane.
		for _, c := range []struct{ method, uri string }{
			{http.MethodGet, "/api/state"}, {http.MethodGet, "/api/status"}, {http.MethodGet, "/api/platforms"},
			{http.MethodPut, "/api/state"},
		} {
			body := []byte(nil)
			if c.method == http.MethodPut {
				body = mustJSON(t, testState(1))
			}
			res := ta.controlWith(protocol.Signer{}, c.method, c.uri, body, bootKey())
			if res.Status != http.StatusUnauthorized || res.errorCode() != protocol.CodeUnauthorized {
				t.Errorf("%s %s with K_boot = %d %s, want 401 unauthorized", c.method, c.uri, res.Status, res.Body)
			}
		}
		// K_ctl does.
		if res := ta.control(http.MethodGet, "/api/state", nil); res.Status != http.StatusOK {
			t.Fatalf("GET /api/state with K_ctl = %d %s", res.Status, res.Body)
		}
		// K_ctl does not open enrollment.
		if res := enroll(ta, enrollBody(selfID, testPlatformToken), ctlKey()); res.Status != http.StatusUnauthorized {
			t.Fatalf("enroll with K_ctl = %d %s, want 401", res.Status, res.Body)
		}
	})

	t.Run("same platform and token again is 200, anything else already_enrolled", func(t *testing.T) {
		ta := mustStartAgent(t, nil)
		ta.enroll()
		if res := enroll(ta, enrollBody(selfID, testPlatformToken), bootKey()); res.Status != http.StatusOK {
			t.Fatalf("enroll again = %d %s", res.Status, res.Body)
		}
		ta.restart()
		if res := enroll(ta, enrollBody(selfID, testPlatformToken), bootKey()); res.Status != http.StatusOK {
			t.Fatalf("enroll again after restart = %d %s", res.Status, res.Body)
		}
		for name, body := range map[string][]byte{
			"other token":    enrollBody(selfID, strings.Repeat("x", 43)),
			"other platform": enrollBody(otherID, testPlatformToken),
		} {
			res := enroll(ta, body, bootKey())
			if res.Status != http.StatusConflict || res.errorCode() != protocol.CodeAlreadyEnrolled {
				t.Errorf("%s: enroll = %d %s, want 409 already_enrolled", name, res.Status, res.Body)
			}
		}
		// The original enrollment still holds.
		if res := ta.control(http.MethodGet, "/api/state", nil); res.Status != http.StatusOK {
			t.Fatalf("GET /api/state = %d %s", res.Status, res.Body)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		ta := mustStartAgent(t, nil)
		cases := []struct {
			name string
			body []byte
			key  []byte
			code protocol.Code
		}{
			{"wrong key", enrollBody(selfID, testPlatformToken), []byte("not the sync token at all, no no no"), protocol.CodeUnauthorized},
			{"short platform token", enrollBody(selfID, "short"), bootKey(), protocol.CodeBadRequest},
			{"unknown field", []byte(`{"platform":{"id":2},"platform_token":"` + testPlatformToken + `","extra":1}`), bootKey(), protocol.CodeBadRequest},
			{"no platform id", enrollBody(0, testPlatformToken), bootKey(), protocol.CodeBadRequest},
		}
		for _, c := range cases {
			res := enroll(ta, c.body, c.key)
			if res.errorCode() != c.code {
				t.Errorf("%s: enroll = %d %s, want %s", c.name, res.Status, res.Body, c.code)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/api/health", nil)
		var h protocol.Health
		ta.do(req).json(t, &h)
		if h.Enrolled {
			t.Fatal("a refused enrollment enrolled the agent")
		}
	})
}

func TestControlPlane_Refusals(t *testing.T) {
	ta := mustStartAgent(t, nil)
	ta.mustReady()
	body := mustJSON(t, testState(5))

	put := func(h func(*http.Request)) response {
		req, _ := http.NewRequest(http.MethodPut, ta.srv.URL+"/api/state", bytes.NewReader(body))
		protocol.Signer{}.SignControl(http.MethodPut, "/api/state", body, ctlKey()).Set(req.Header)
		if h != nil {
			h(req)
		}
		return ta.do(req)
	}
	cases := []struct {
		name   string
		edit   func(*http.Request)
		status int
		code   protocol.Code
	}{
		{"wrong key", func(r *http.Request) {
			protocol.Signer{}.SignControl(http.MethodPut, "/api/state", body, []byte("wrong-key-wrong-key-wrong-key-wrong")).Set(r.Header)
		}, 401, protocol.CodeUnauthorized},
		{"tampered body", func(r *http.Request) {
			tampered := bytes.Replace(body, []byte(`"revision":5`), []byte(`"revision":6`), 1)
			r.Body = ioNopCloser(tampered)
			r.ContentLength = int64(len(tampered))
		}, 401, protocol.CodeUnauthorized},
		{"other method signed", func(r *http.Request) {
			protocol.Signer{}.SignControl(http.MethodPost, "/api/state", body, ctlKey()).Set(r.Header)
		}, 401, protocol.CodeUnauthorized},
		{"other uri signed", func(r *http.Request) {
			protocol.Signer{}.SignControl(http.MethodPut, "/api/state?x=1", body, ctlKey()).Set(r.Header)
		}, 401, protocol.CodeUnauthorized},
		{"stale timestamp", func(r *http.Request) {
			old := protocol.Signer{Now: func() time.Time { return time.Now().Add(-301 * time.Second) }}
			old.SignControl(http.MethodPut, "/api/state", body, ctlKey()).Set(r.Header)
		}, 401, protocol.CodeStaleTimestamp},
		{"future timestamp", func(r *http.Request) {
			future := protocol.Signer{Now: func() time.Time { return time.Now().Add(301 * time.Second) }}
			future.SignControl(http.MethodPut, "/api/state", body, ctlKey()).Set(r.Header)
		}, 401, protocol.CodeStaleTimestamp},
		{"no signature", func(r *http.Request) { r.Header.Del(protocol.HeaderSignature) }, 401, protocol.CodeUnauthorized},
		{"bad id", func(r *http.Request) { r.Header.Set(protocol.HeaderID, "no spaces allowed") }, 401, protocol.CodeUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := put(c.edit)
			if res.Status != c.status || res.errorCode() != c.code {
				t.Fatalf("= %d %s, want %d %s", res.Status, res.Body, c.status, c.code)
			}
			var st protocol.State
			ta.control(http.MethodGet, "/api/state", nil).json(t, &st)
			if st.Revision != 1 {
				t.Fatalf("a refused PUT changed the revision to %d", st.Revision)
			}
		})
	}

	t.Run("replayed id", func(t *testing.T) {
		h := protocol.Signer{}.SignControl(http.MethodGet, "/api/status", nil, ctlKey())
		get := func() response {
			req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/api/status", nil)
			h.Set(req.Header)
			return ta.do(req)
		}
		if res := get(); res.Status != http.StatusOK {
			t.Fatalf("first = %d %s", res.Status, res.Body)
		}
		if res := get(); res.Status != http.StatusConflict || res.errorCode() != protocol.CodeReplayed {
			t.Fatalf("replay = %d %s, want 409 replayed", res.Status, res.Body)
		}
		ta.restart()
		if res := get(); res.Status != http.StatusConflict || res.errorCode() != protocol.CodeReplayed {
			t.Fatalf("replay after restart = %d %s, want 409 replayed", res.Status, res.Body)
		}
	})

	t.Run("replayed PUT writes nothing", func(t *testing.T) {
		h := protocol.Signer{}.SignControl(http.MethodPut, "/api/state", body, ctlKey())
		send := func(b []byte) response {
			req, _ := http.NewRequest(http.MethodPut, ta.srv.URL+"/api/state", bytes.NewReader(b))
			h.Set(req.Header)
			return ta.do(req)
		}
		if res := send(body); res.Status != http.StatusOK {
			t.Fatalf("first = %d %s", res.Status, res.Body)
		}
		ta.putState(testState(6))
		if res := send(body); res.errorCode() != protocol.CodeReplayed {
			t.Fatalf("replay = %d %s, want replayed", res.Status, res.Body)
		}
		var st protocol.State
		ta.control(http.MethodGet, "/api/state", nil).json(t, &st)
		if st.Revision != 6 {
			t.Fatalf("revision = %d after a replay, want 6", st.Revision)
		}
	})

	t.Run("query string is signed as sent", func(t *testing.T) {
		res := ta.controlWith(protocol.Signer{}, http.MethodGet, "/api/status?verbose=1&x=%20y", nil, ctlKey())
		if res.Status != http.StatusOK {
			t.Fatalf("= %d %s", res.Status, res.Body)
		}
	})

	t.Run("unknown endpoint and method", func(t *testing.T) {
		if res := ta.control(http.MethodGet, "/api/nothing", nil); res.Status != 404 || res.errorCode() != protocol.CodeNotFound {
			t.Fatalf("unknown endpoint = %d %s", res.Status, res.Body)
		}
		if res := ta.control(http.MethodDelete, "/api/state", nil); res.Status != 405 || res.errorCode() != protocol.CodeBadRequest {
			t.Fatalf("unknown method = %d %s", res.Status, res.Body)
		}
	})
}

func TestPutState(t *testing.T) {
	ta := mustStartAgent(t, func(o *agent.Options) { o.BodyLimit = 64 << 10 })
	ta.enroll()

	t.Run("before any PUT the state is empty", func(t *testing.T) {
		res := ta.control(http.MethodGet, "/api/state", nil)
		want := `{"revision":0,"platform":{"id":2,"name":"blog","domain":"blog.example","agent_url":"https://blog.example:7443"},"platforms":[],"syncs":[],"peers":[]}` + "\n"
		if string(res.Body) != want {
			t.Fatalf("GET /api/state = %s, want %s", res.Body, want)
		}
	})

	st := testState(3)
	t.Run("accepted, answered redacted", func(t *testing.T) {
		res := ta.control(http.MethodPut, "/api/state", st)
		if res.Status != http.StatusOK {
			t.Fatalf("= %d %s", res.Status, res.Body)
		}
		want := mustJSON(t, st.Redacted())
		if got := bytes.TrimSpace(res.Body); !bytes.Equal(got, want) {
			t.Fatalf("PUT answer = %s\nwant %s", got, want)
		}
		if bytes.Contains(res.Body, []byte(st.Peers[0].Key)) {
			t.Fatal("PUT answer shows a peer key")
		}
		get := ta.control(http.MethodGet, "/api/state", nil)
		if got := bytes.TrimSpace(get.Body); !bytes.Equal(got, want) {
			t.Fatalf("GET = %s\nwant %s", got, want)
		}
	})

	t.Run("idempotent", func(t *testing.T) {
		for range 2 {
			if res := ta.control(http.MethodPut, "/api/state", st); res.Status != http.StatusOK {
				t.Fatalf("= %d %s", res.Status, res.Body)
			}
		}
	})

	t.Run("older revision is conflict", func(t *testing.T) {
		res := ta.control(http.MethodPut, "/api/state", testState(2))
		if res.Status != http.StatusConflict || res.errorCode() != protocol.CodeConflict {
			t.Fatalf("= %d %s, want 409 conflict", res.Status, res.Body)
		}
	})

	bad := map[string]any{
		"other platform": func() protocol.State { s := testState(4); s.Platform.ID = otherID; return s }(),
		"bad peer key":   func() protocol.State { s := testState(4); s.Peers[0].Key = "bm90IDMyIGJ5dGVz"; return s }(),
		"peer key not base64": func() protocol.State {
			s := testState(4)
			s.Peers[0].Key = "%%%"
			return s
		}(),
		"sync not about this platform": func() protocol.State {
			s := testState(4)
			s.Syncs[0].TargetPlatformID = otherID
			return s
		}(),
		"bad if_exists":  func() protocol.State { s := testState(4); s.Syncs[0].IfExists = "replace"; return s }(),
		"duplicate sync": func() protocol.State { s := testState(4); s.Syncs[1].ID = s.Syncs[0].ID; return s }(),
		"unknown field":  `{"revision":4,"platform":{"id":2},"platforms":[],"syncs":[],"peers":[],"surprise":true}`,
		"trailing data":  `{"revision":4,"platform":{"id":2},"platforms":[],"syncs":[],"peers":[]} {}`,
		"not json":       `revision=4`,
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			res := ta.control(http.MethodPut, "/api/state", body)
			if res.Status != http.StatusBadRequest || res.errorCode() != protocol.CodeBadRequest {
				t.Fatalf("= %d %s, want 400 bad_request", res.Status, res.Body)
			}
		})
	}

	t.Run("body over the limit", func(t *testing.T) {
		big := testState(4)
		big.Platforms[0].Name = strings.Repeat("x", 70<<10)
		res := ta.control(http.MethodPut, "/api/state", big)
		if res.Status != http.StatusRequestEntityTooLarge || res.errorCode() != protocol.CodeTooLarge {
			t.Fatalf("= %d %s, want 413 too_large", res.Status, res.Body)
		}
	})

	t.Run("nothing refused was written, and the state survives a restart", func(t *testing.T) {
		ta.restart()
		var got protocol.State
		ta.control(http.MethodGet, "/api/state", nil).json(t, &got)
		if got.Revision != 3 || got.Platforms[0].Name != "shop" || got.Syncs[0].TargetPlatformID != selfID {
			t.Fatalf("state after restart = %+v", got)
		}
	})
}

func TestModels(t *testing.T) {
	ta := mustStartAgent(t, nil)
	ta.enroll()
	res := ta.control(http.MethodGet, "/api/models", nil)
	want := `{"models":[{"name":"posts","columns":[{"name":"id","type":"INTEGER","nullable":false,"primary_key":true}],"unique":[["ulid"]]}],` +
		`"transformers":["declarative","lowercase_email"],"handlers":["meta","wp_user"]}` + "\n"
	if res.Status != http.StatusOK || string(res.Body) != want {
		t.Fatalf("= %d %s, want %s", res.Status, res.Body, want)
	}
}
