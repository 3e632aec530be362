package fleet

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

const testSyncToken = "sync-token-sync-token-sync-token-0123456789"

// testToken returns a distinct platform token of valid length.
func testToken(id int64) string {
	return "platform-token-" + protocol.FormatID(id) + "-abcdefghijklmnopqrstuvwxyz"
}

func testPlatform(id int64, url string) protocol.Platform {
	return protocol.Platform{
		ID: id, Name: "P" + protocol.FormatID(id), Domain: "p" + protocol.FormatID(id) + ".example",
		ShowInMenu: true, Order: id, AgentURL: url,
	}
}

// mustClient returns a client for the fake agent with the platform token of id.
func mustClient(tb testing.TB, a *fakeAgent, id int64, mod ...func(*ClientOptions)) *Client {
	tb.Helper()
	opts := ClientOptions{
		URL: a.URL(), Fingerprint: a.Fingerprint(), SyncToken: testSyncToken, PlatformToken: testToken(id),
		RetryWait: time.Millisecond,
	}
	for _, m := range mod {
		m(&opts)
	}
	c, err := NewClient(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

func TestClient_SignsEveryRequest(t *testing.T) {
	for _, tlsServer := range []bool{false, true} {
		name := "http"
		if tlsServer {
			name = "https"
		}
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			a := newFakeAgent(t, testSyncToken, tlsServer)
			c := mustClient(t, a, 1)

			h, err := c.Health(ctx)
			if err != nil || h.Enrolled {
				t.Fatalf("Health = %+v, %v; want not enrolled", h, err)
			}
			resp, err := c.Enroll(ctx, testPlatform(1, a.URL()))
			if err != nil || resp.PlatformID != 1 || resp.TLSFingerprint != a.Fingerprint() {
				t.Fatalf("Enroll = %+v, %v", resp, err)
			}
			st := protocol.State{Revision: 3, Platform: protocol.PlatformRef{ID: 1},
				Platforms: []protocol.Platform{testPlatform(1, a.URL())}, Syncs: []protocol.Sync{}, Peers: []protocol.Peer{}}
			inForce, err := c.PutState(ctx, st)
			if err != nil || inForce != 3 {
				t.Fatalf("PutState = %+v, %v", inForce, err)
			}
			if got, err := c.GetState(ctx); err != nil || got.Revision != 3 {
				t.Fatalf("GetState = %+v, %v", got, err)
			}
			if s, err := c.Status(ctx); err != nil || s.Revision != 3 || s.PlatformID != 1 {
				t.Fatalf("Status = %+v, %v", s, err)
			}
			if m, err := c.Models(ctx); err != nil || len(m) != 1 || m[0].Name != "posts" {
				t.Fatalf("Models = %+v, %v", m, err)
			}
			if caps, err := c.Capabilities(ctx); err != nil || len(caps.Transformers) != 1 || caps.Handlers == nil {
				t.Fatalf("Capabilities = %+v, %v", caps, err)
			}
			if p, err := c.Platforms(ctx); err != nil || len(p) != 1 {
				t.Fatalf("Platforms = %+v, %v", p, err)
			}
			var ps []protocol.Platform
			if err := c.Call(ctx, http.MethodGet, "/api/platforms?page=2&q=a%20b&x=%2F", nil, &ps); err != nil {
				t.Fatalf("Call with query: %v", err)
			}
			if run, err := c.Reconcile(ctx, 7); err != nil || run != "run-1" {
				t.Fatalf("Reconcile = %q, %v", run, err)
			}
			if rel, err := c.Relations(ctx, "posts", "01HZ a/b?c"); err != nil || len(rel.PlatformIDs) != 2 {
				t.Fatalf("Relations = %+v, %v", rel, err)
			}
			if rel, err := c.PutRelations(ctx, "posts", "01HZ", protocol.Relations{PlatformIDs: []int64{4}}); err != nil ||
				len(rel.PlatformIDs) != 1 {
				t.Fatalf("PutRelations = %+v, %v", rel, err)
			}
			if err := c.DeleteSync(ctx, 7); err != nil {
				t.Fatalf("DeleteSync: %v", err)
			}

			_, _, _, reqs := a.snapshot()
			wantURIs := []string{
				"GET /api/health", "POST /api/enroll", "PUT /api/state", "GET /api/state", "GET /api/status",
				"GET /api/models", "GET /api/models", "GET /api/platforms", "GET /api/platforms?page=2&q=a%20b&x=%2F",
				"POST /api/syncs/7/reconcile", "GET /api/relations/posts/01HZ%20a%2Fb%3Fc",
				"PUT /api/relations/posts/01HZ", "DELETE /api/syncs/7",
			}
			if len(reqs) != len(wantURIs) {
				t.Fatalf("agent saw %d requests, want %d: %+v", len(reqs), len(wantURIs), reqs)
			}
			ids := map[string]bool{}
			for i, r := range reqs {
				if got := r.Method + " " + r.RequestURI; got != wantURIs[i] {
					t.Errorf("request %d = %s, want %s", i, got, wantURIs[i])
				}
				if !r.Verified {
					t.Errorf("request %d (%s %s) failed verification", i, r.Method, r.RequestURI)
				}
				if i == 0 {
					if r.ID != "" {
						t.Errorf("GET /api/health was signed (id %q)", r.ID)
					}
					continue
				}
				if ids[r.ID] {
					t.Errorf("message id %s used twice", r.ID)
				}
				ids[r.ID] = true
			}
		})
	}
}

func TestClient_RetriesAreSignedAfresh(t *testing.T) {
	a := newFakeAgent(t, testSyncToken, false)
	a.enroll(testPlatform(1, a.URL()), testToken(1))
	a.unavailable.Store(2)
	c := mustClient(t, a, 1)
	if _, err := c.GetState(t.Context()); err != nil {
		t.Fatalf("GetState after two 503s: %v", err)
	}
	_, _, _, reqs := a.snapshot()
	if len(reqs) != 3 {
		t.Fatalf("agent saw %d attempts, want 3", len(reqs))
	}
	ids := map[string]bool{}
	for _, r := range reqs {
		if !r.Verified || ids[r.ID] {
			t.Fatalf("attempt %+v: want a verified signature with a fresh id", r)
		}
		ids[r.ID] = true
	}

	// A POST that is not idempotent is not retried.
	a.unavailable.Store(1)
	_, err := c.Reconcile(t.Context(), 1)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Status != http.StatusServiceUnavailable {
		t.Fatalf("Reconcile = %v, want the 503 answered once", err)
	}
}

func TestClient_DecodesErrors(t *testing.T) {
	ctx := t.Context()
	a := newFakeAgent(t, testSyncToken, false)
	a.enroll(testPlatform(1, a.URL()), testToken(1))

	t.Run("envelope", func(t *testing.T) {
		a.set(func(a *fakeAgent) { a.failPut = protocol.Errorf(protocol.CodeLocked, "platform is locked") })
		t.Cleanup(func() { a.set(func(a *fakeAgent) { a.failPut = nil }) })
		_, err := mustClient(t, a, 1).PutState(ctx, protocol.State{Platform: protocol.PlatformRef{ID: 1}})
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeLocked || pe.Status != http.StatusLocked ||
			pe.Message != "platform is locked" {
			t.Fatalf("err = %#v, want locked/423 with the agent's message", err)
		}
		if !IsCode(err, protocol.CodeLocked) {
			t.Fatal("IsCode(locked) = false")
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		c := mustClient(t, a, 1, func(o *ClientOptions) { o.PlatformToken = testToken(99) })
		_, err := c.GetState(ctx)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeUnauthorized || pe.Status != http.StatusUnauthorized {
			t.Fatalf("err = %#v, want unauthorized/401", err)
		}
		for _, secret := range []string{testToken(99), testToken(1), testSyncToken} {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q contains a token", err)
			}
		}
	})
	t.Run("not an envelope", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}))
		t.Cleanup(srv.Close)
		c, err := NewClient(ClientOptions{URL: srv.URL, SyncToken: testSyncToken, PlatformToken: testToken(1),
			Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Status(ctx)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeInternal || pe.Status != http.StatusBadGateway {
			t.Fatalf("err = %#v, want internal/502", err)
		}
	})
	t.Run("unknown endpoint", func(t *testing.T) {
		err := mustClient(t, a, 1).Call(ctx, http.MethodGet, "/api/nothing", nil, nil)
		if !IsCode(err, protocol.CodeNotFound) {
			t.Fatalf("err = %v, want not_found", err)
		}
	})
}

func TestClient_Unreachable(t *testing.T) {
	ctx := t.Context()
	t.Run("connection refused", func(t *testing.T) {
		a := newFakeAgent(t, testSyncToken, false)
		a.server.Close()
		_, err := mustClient(t, a, 1).Health(ctx)
		if !IsUnreachable(err) {
			t.Fatalf("err = %v, want unreachable", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		a := newFakeAgent(t, testSyncToken, false)
		a.set(func(a *fakeAgent) { a.delay = 300 * time.Millisecond })
		c := mustClient(t, a, 1, func(o *ClientOptions) { o.Timeout = 50 * time.Millisecond })
		start := time.Now()
		_, err := c.Health(ctx)
		if !IsUnreachable(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want unreachable by deadline", err)
		}
		if d := time.Since(start); d > 250*time.Millisecond {
			t.Fatalf("call took %v despite a 50 ms timeout", d)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		a := newFakeAgent(t, testSyncToken, false)
		a.set(func(a *fakeAgent) { a.delay = 300 * time.Millisecond })
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err := mustClient(t, a, 1).Health(cctx)
		if IsUnreachable(err) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want canceled and not unreachable", err)
		}
	})
}

func TestClient_Pinning(t *testing.T) {
	ctx := t.Context()
	a := newFakeAgent(t, testSyncToken, true)
	other := newFakeAgent(t, testSyncToken, true)

	t.Run("pinned fingerprint", func(t *testing.T) {
		if _, err := mustClient(t, a, 1).Health(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("changed fingerprint", func(t *testing.T) {
		// Another certificate: the fingerprint of a key pair the agent does not serve.
		pinned := protocol.Fingerprint([]byte("another certificate"))
		_, _, _, reqs := a.snapshot()
		before := len(reqs)
		c := mustClient(t, a, 1, func(o *ClientOptions) { o.Fingerprint = pinned })
		_, err := c.Enroll(ctx, testPlatform(1, a.URL()))
		var fm *FingerprintMismatchError
		if !errors.As(err, &fm) || !errors.Is(err, ErrFingerprintChanged) {
			t.Fatalf("err = %v, want *FingerprintMismatchError", err)
		}
		if fm.Pinned != pinned || fm.Seen != a.Fingerprint() {
			t.Fatalf("mismatch = %+v, want pinned %s seen %s", fm, pinned, a.Fingerprint())
		}
		if IsUnreachable(err) {
			t.Fatal("a changed fingerprint counts as unreachable")
		}
		if _, _, _, reqs := a.snapshot(); len(reqs) != before {
			t.Fatalf("the agent received %d requests despite the changed certificate", len(reqs)-before)
		}
		if strings.Contains(err.Error(), testToken(1)) || strings.Contains(err.Error(), testSyncToken) {
			t.Fatal("error contains a token")
		}
	})
	t.Run("another agent's certificate", func(t *testing.T) {
		c := mustClient(t, a, 1, func(o *ClientOptions) { o.Fingerprint = other.Fingerprint() })
		if _, err := c.Health(ctx); !errors.Is(err, ErrFingerprintChanged) {
			t.Fatalf("err = %v, want ErrFingerprintChanged", err)
		}
	})
	t.Run("not pinned", func(t *testing.T) {
		_, err := NewClient(ClientOptions{URL: a.URL(), SyncToken: testSyncToken, PlatformToken: testToken(1)})
		if !errors.Is(err, ErrNotPinned) {
			t.Fatalf("err = %v, want ErrNotPinned", err)
		}
	})
	t.Run("malformed pin", func(t *testing.T) {
		_, err := NewClient(ClientOptions{URL: a.URL(), Fingerprint: "sha256:ABC", SyncToken: testSyncToken,
			PlatformToken: testToken(1)})
		if err == nil {
			t.Fatal("a malformed fingerprint was accepted")
		}
	})
}

func TestProbe(t *testing.T) {
	ctx := t.Context()
	t.Run("https", func(t *testing.T) {
		a := newFakeAgent(t, testSyncToken, true)
		fp, h, err := Probe(ctx, a.URL())
		if err != nil || fp != a.Fingerprint() || h.Status != "ok" {
			t.Fatalf("Probe = %q, %+v, %v; want %s", fp, h, err, a.Fingerprint())
		}
		if _, _, _, reqs := a.snapshot(); len(reqs) != 1 || reqs[0].RequestURI != "/api/health" || reqs[0].ID != "" {
			t.Fatalf("probe sent %+v, want one unsigned GET /api/health", reqs)
		}
	})
	t.Run("http", func(t *testing.T) {
		a := newFakeAgent(t, testSyncToken, false)
		fp, h, err := Probe(ctx, a.URL())
		if err != nil || fp != "" || h.Status != "ok" {
			t.Fatalf("Probe = %q, %+v, %v", fp, h, err)
		}
	})
	t.Run("down", func(t *testing.T) {
		a := newFakeAgent(t, testSyncToken, true)
		a.server.Close()
		if _, _, err := Probe(ctx, a.URL()); !IsUnreachable(err) {
			t.Fatalf("err = %v, want unreachable", err)
		}
	})
}

func TestNewClient_RefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts ClientOptions
	}{
		{"scheme", ClientOptions{URL: "ftp://x:1", SyncToken: testSyncToken, PlatformToken: testToken(1)}},
		{"path", ClientOptions{URL: "http://x:1/agent", SyncToken: testSyncToken, PlatformToken: testToken(1)}},
		{"credentials", ClientOptions{URL: "http://u:pw@x:1", SyncToken: testSyncToken, PlatformToken: testToken(1)}},
		{"short sync token", ClientOptions{URL: "http://x:1", SyncToken: "short", PlatformToken: testToken(1)}},
		{"short platform token", ClientOptions{URL: "http://x:1", SyncToken: testSyncToken, PlatformToken: "short"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewClient(tc.opts)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), testSyncToken) {
				t.Fatalf("error %q leaks a secret", err)
			}
		})
	}
}

func TestRevisionOnly(t *testing.T) {
	for _, tc := range []struct {
		body    string
		want    int64
		wantErr bool
	}{
		{`{"revision":42,"platform":{"id":1},"platforms":[]}`, 42, false},
		{`{"platform":{"id":1,"name":"x"},"peers":[{"key":""}],"revision":7}`, 7, false},
		{`{"platform":{"id":1}}`, 0, true},
		{`[1,2]`, 0, true},
		{`{"revision":"x"}`, 0, true},
	} {
		var r revisionOnly
		err := r.decodeBody([]byte(tc.body))
		if (err != nil) != tc.wantErr || int64(r) != tc.want {
			t.Errorf("decode %s = %d, %v; want %d (error %v)", tc.body, r, err, tc.want, tc.wantErr)
		}
	}
}
