package fleet

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // SQLite driver for the application databases.

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/agent/appdb"
	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// realAgent is a real agent (package agent) over a real state file and a real SQLite
// application database, served over TLS with a certificate it generated, on loopback.
type realAgent struct {
	tb          testing.TB
	dir         string
	addr        string
	fingerprint string
	app         *sql.DB
	requests    atomic.Int64

	agent *agent.Agent
	store *state.Store
	db    *appdb.DB
	srv   *httptest.Server
	down  bool
}

const realPostsDDL = `CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, ulid TEXT UNIQUE, title TEXT)`

func startRealAgent(tb testing.TB) *realAgent {
	tb.Helper()
	ra := &realAgent{tb: tb, dir: tb.TempDir()}
	app, err := sql.Open("sqlite3", filepath.Join(ra.dir, "app.db"))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := app.Exec(realPostsDDL); err != nil {
		tb.Fatal(err)
	}
	ra.app = app
	tb.Cleanup(func() { _ = app.Close() })
	ra.start(true)
	tb.Cleanup(ra.stop)
	return ra
}

// start starts the agent; newCert generates a new certificate first (a reinstalled agent).
// It listens on the address it had, if any.
func (ra *realAgent) start(newCert bool) {
	tb := ra.tb
	tb.Helper()
	ctx := context.Background()
	certFile, keyFile := agent.CertPaths(ra.dir)
	if newCert {
		if err := agent.GenerateCertificate(certFile, keyFile, []string{"127.0.0.1", "localhost"}, time.Now()); err != nil {
			tb.Fatal(err)
		}
	}
	cert, fp, err := agent.LoadCertificate(certFile, keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	ra.fingerprint = fp
	if ra.store, err = state.Open(ctx, filepath.Join(ra.dir, "state")); err != nil {
		tb.Fatal(err)
	}
	if ra.db, err = appdb.Open(ctx, "sqlite:"+filepath.Join(ra.dir, "app.db"), appdb.Config{}); err != nil {
		tb.Fatal(err)
	}
	ra.agent, err = agent.New(ctx, agent.Options{
		SyncToken: testSyncToken, Store: ra.store, Applier: ra.db, Models: ra.db, TLSFingerprint: fp,
	})
	if err != nil {
		tb.Fatal(err)
	}
	h := ra.agent.Handler()
	ra.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ra.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	ra.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if ra.addr != "" {
		_ = ra.srv.Listener.Close()
		l, err := net.Listen("tcp", ra.addr)
		if err != nil {
			tb.Fatalf("listen again on %s: %v", ra.addr, err)
		}
		ra.srv.Listener = l
	}
	ra.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ra.srv.StartTLS()
	ra.addr = ra.srv.Listener.Addr().String()
	ra.agent.Start()
	ra.down = false
}

func (ra *realAgent) stop() {
	if ra.down {
		return
	}
	ra.down = true
	ra.srv.Close()
	ra.agent.Stop()
	_ = ra.db.Close()
	_ = ra.store.Close()
}

func (ra *realAgent) URL() string { return "https://" + ra.addr }

// newRealFleet starts n real agents as platforms 1..n with a ring of enabled syncs
// i -> i+1 of posts.
func newRealFleet(tb testing.TB, n int) (*fakeCatalog, *secrets.Memory, []*realAgent) {
	tb.Helper()
	cat := &fakeCatalog{acked: map[int64]int64{}, pending: map[int64]string{}}
	keys := secrets.NewMemory()
	ctx := context.Background()
	if err := keys.Set(ctx, secrets.SyncTokenKey, testSyncToken); err != nil {
		tb.Fatal(err)
	}
	f := Fleet{Revision: 10}
	var agents []*realAgent
	for i := 1; i <= n; i++ {
		id := int64(i)
		ra := startRealAgent(tb)
		agents = append(agents, ra)
		f.Platforms = append(f.Platforms, FleetPlatform{Platform: testPlatform(id, ra.URL()), TLSFingerprint: ra.fingerprint})
		if err := keys.Set(ctx, secrets.PlatformKey(id), testToken(id)); err != nil {
			tb.Fatal(err)
		}
		f.Syncs = append(f.Syncs, protocol.Sync{
			ID: id, Status: true, Title: "posts", SourcePlatformID: id, SourceModel: "posts",
			TargetPlatformID: int64(i%n + 1), TargetModel: "posts", IfExists: protocol.IfExistsUpdate,
			SyncAllFields: true, Interval: 60,
		})
	}
	cat.fleet = f
	return cat, keys, agents
}

func TestIntegration_RealAgents(t *testing.T) {
	ctx := t.Context()
	cat, keys, agents := newRealFleet(t, 3)
	s := NewSyncer(cat, keys, SyncerOptions{Client: ClientOptions{RetryWait: time.Millisecond}})
	t.Cleanup(s.Close)
	tokens := map[int64]string{1: testToken(1), 2: testToken(2), 3: testToken(3)}

	rep, err := s.SyncPlatforms(ctx, SyncOptions{})
	if err != nil || rep.OK != 3 {
		t.Fatalf("first press: %+v, %v", rep, err)
	}
	for i, ra := range agents {
		id := int64(i + 1)
		if r := rep.Results[i]; !r.Enrolled || r.AgentRevision != 10 {
			t.Errorf("platform %d: %+v, want enrolled at revision 10", id, r)
		}
		c := mustRealClient(t, ra, id)
		h, err := c.Health(ctx)
		if err != nil || !h.Enrolled || h.PlatformID == nil || *h.PlatformID != id {
			t.Fatalf("platform %d health = %+v, %v", id, h, err)
		}
		inForce, err := c.GetState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want, err := DesiredState(cat.fleet, id, testSyncToken, tokens)
		if err != nil {
			t.Fatal(err)
		}
		if got, exp := mustJSON(t, inForce), mustJSON(t, want.Redacted()); !bytes.Equal(got, exp) {
			t.Errorf("platform %d: state in force\n%s\nwant\n%s", id, got, exp)
		}
		if models, err := c.Models(ctx); err != nil || len(models) == 0 {
			t.Errorf("platform %d models = %+v, %v", id, models, err)
		}
	}

	t.Run("peers deliver with the pair keys they were given", func(t *testing.T) {
		// Platform 1 delivers to 2 with the key from its desired state.
		st, err := DesiredState(cat.fleet, 1, testSyncToken, tokens)
		if err != nil {
			t.Fatal(err)
		}
		key, err := protocol.DecodeKey(st.Peers[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		batch := protocol.Batch{BatchID: protocol.NewULID(), SourcePlatformID: 1, SyncID: 1, Changes: []protocol.Change{{
			Seq: 1, EventType: protocol.EventCreated, Model: "posts",
			Key:  protocol.Key{Field: "ulid", Value: "01HZFLEETINTEGRATION0000001"},
			Data: map[string]any{"ulid": "01HZFLEETINTEGRATION0000001", "title": "hello"}, OriginPlatformID: 1,
		}}}
		body := mustJSON(t, batch)
		c := mustRealClient(t, agents[1], 2)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.Peers[0].URL+st.Peers[0].WebhookPath, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		protocol.Signer{}.SignData(batch.BatchID, body, key).Set(req.Header)
		req.Header.Set(protocol.HeaderPlatform, "1")
		resp, err := (&http.Client{Transport: c.raw.transport}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delivery answered %d, want 202", resp.StatusCode)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			var title string
			err := agents[1].app.QueryRow(`SELECT title FROM posts WHERE ulid = ?`, "01HZFLEETINTEGRATION0000001").Scan(&title)
			if err == nil && title == "hello" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the delivered row was not applied: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("second press is idempotent", func(t *testing.T) {
		rep, err := s.SyncPlatforms(ctx, SyncOptions{})
		if err != nil || rep.OK != 3 {
			t.Fatalf("second press: %+v, %v", rep, err)
		}
		for _, r := range rep.Results {
			if r.Enrolled {
				t.Errorf("platform %d enrolled again", r.PlatformID)
			}
		}
	})

	t.Run("one agent down", func(t *testing.T) {
		agents[2].stop()
		t.Cleanup(func() { agents[2].start(false) })
		cat.mu.Lock()
		cat.fleet.Revision++
		cat.mu.Unlock()
		rep, err := s.SyncPlatforms(ctx, SyncOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK != 2 || rep.Unreachable != 1 || rep.Results[2].Outcome != OutcomeUnreachable {
			t.Fatalf("report = %+v", rep)
		}
		if st, err := mustRealClient(t, agents[0], 1).GetState(ctx); err != nil || st.Revision != 11 {
			t.Fatalf("platform 1 in force: %d, %v; want 11", st.Revision, err)
		}
	})

	t.Run("changed certificate is refused", func(t *testing.T) {
		ra := agents[0]
		ra.stop()
		ra.start(true) // reinstalled with a new certificate, same address
		if ra.fingerprint == cat.fleet.Platforms[0].TLSFingerprint {
			t.Fatal("the agent kept its certificate")
		}
		before := ra.requests.Load()
		rep, err := s.SyncPlatforms(ctx, SyncOptions{PlatformIDs: []int64{1}})
		if err != nil {
			t.Fatal(err)
		}
		r := rep.Results[0]
		if r.Outcome != OutcomeFailed || r.Code != CodeFingerprintChanged || r.Fingerprint != ra.fingerprint {
			t.Fatalf("result = %+v, want fingerprint_changed", r)
		}
		if n := ra.requests.Load() - before; n != 0 {
			t.Fatalf("the agent with the new certificate received %d requests", n)
		}
		if cat.pending[1] != ra.fingerprint {
			t.Fatal("the new fingerprint is not pending for the admin")
		}
	})
}

func TestIntegration_RealAgentTokenRotation(t *testing.T) {
	ctx := t.Context()
	cat, keys, agents := newRealFleet(t, 2)
	s := NewSyncer(cat, keys, SyncerOptions{Client: ClientOptions{RetryWait: time.Millisecond}})
	t.Cleanup(s.Close)
	if rep, err := s.SyncPlatforms(ctx, SyncOptions{}); err != nil || rep.OK != 2 {
		t.Fatalf("push: %+v, %v", rep, err)
	}
	err := s.RotatePlatformToken(ctx, 2)
	var re *RotationError
	if errors.As(err, &re) && re.Stage == StageSend && IsCode(err, protocol.CodeNotFound) {
		// The agent does not serve POST /api/token yet: the refusal must leave everything
		// working with the old token.
		if v, _ := keys.Get(ctx, secrets.PlatformKey(2)); v != testToken(2) {
			t.Fatal("a refused rotation changed the token")
		}
		if _, err := keys.Get(ctx, PendingTokenKey(2)); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatal("a refused rotation left a pending token")
		}
		if _, err := mustRealClient(t, agents[1], 2).GetState(ctx); err != nil {
			t.Fatalf("old token refused: %v", err)
		}
		t.Skip("the agent has no POST /api/token yet; rotation success is tested against the fake agent")
	}
	if err != nil {
		t.Fatal(err)
	}
	newToken, err := keys.Get(ctx, secrets.PlatformKey(2))
	if err != nil || newToken == testToken(2) {
		t.Fatalf("keyring after rotation: %v", err)
	}
	if _, err := mustRealClient(t, agents[1], 2).GetState(ctx); !IsCode(err, protocol.CodeUnauthorized) {
		t.Fatalf("old token after rotation: err = %v, want unauthorized", err)
	}
	if rep, err := s.SyncPlatforms(ctx, SyncOptions{}); err != nil || rep.OK != 2 {
		t.Fatalf("push after rotation: %+v, %v", rep, err)
	}
}

func mustRealClient(tb testing.TB, ra *realAgent, id int64) *Client {
	tb.Helper()
	c, err := NewClient(ClientOptions{URL: ra.URL(), Fingerprint: ra.fingerprint, SyncToken: testSyncToken,
		PlatformToken: testToken(id)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}
