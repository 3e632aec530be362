package fleet

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

func newTestSyncer(tf *testFleet, opts SyncerOptions) *Syncer {
	opts.Client.RetryWait = time.Millisecond
	s := NewSyncer(tf.catalog, tf.secrets, opts)
	return s
}

// progressLog collects progress callbacks.
type progressLog struct {
	mu     sync.Mutex
	events []Progress
}

func (l *progressLog) add(p Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, p)
}

func countRequests(a *fakeAgent, method, path string) int {
	_, _, _, reqs := a.snapshot()
	n := 0
	for _, r := range reqs {
		if r.Method == method && r.RequestURI == path {
			n++
		}
	}
	return n
}

func TestSyncer_SyncPlatforms(t *testing.T) {
	ctx := t.Context()
	tf := newTestFleet(t, 5, true)
	// Agent 2 is down, agent 3 fails with 500, agent 4 keeps a newer revision.
	tf.agent(2).server.Close()
	tf.agent(3).set(func(a *fakeAgent) { a.failPut = protocol.Errorf(protocol.CodeInternal, "disk full") })
	tf.agent(4).enroll(testPlatform(4, tf.agent(4).URL()), testToken(4))
	tf.agent(4).set(func(a *fakeAgent) { a.state = &protocol.State{Revision: 99, Platform: protocol.PlatformRef{ID: 4}} })

	s := newTestSyncer(tf, SyncerOptions{})
	t.Cleanup(s.Close)
	var log progressLog
	rep, err := s.SyncPlatforms(ctx, SyncOptions{Progress: log.add})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Revision != 10 || len(rep.Results) != 5 || rep.OK != 2 || rep.Failed != 2 || rep.Unreachable != 1 {
		t.Fatalf("report = %+v", rep)
	}
	byID := map[int64]Result{}
	for _, r := range rep.Results {
		byID[r.PlatformID] = r
	}
	for _, id := range []int64{1, 5} {
		r := byID[id]
		if r.Outcome != OutcomeOK || !r.Enrolled || r.AgentRevision != 10 || r.Revision != 10 {
			t.Errorf("platform %d: %+v, want ok, enrolled, revision 10", id, r)
		}
		st, token, _, _ := tf.agent(id).snapshot()
		want, err := DesiredState(tf.catalog.fleet, id, testSyncToken, map[int64]string{
			1: testToken(1), 2: testToken(2), 3: testToken(3), 4: testToken(4), 5: testToken(5)})
		if err != nil {
			t.Fatal(err)
		}
		if st == nil || string(mustJSON(t, *st)) != string(mustJSON(t, want)) {
			t.Errorf("platform %d: state in force differs from its desired state", id)
		}
		if token != testToken(id) {
			t.Errorf("platform %d: enrolled with another token", id)
		}
		if tf.catalog.acked[id] != 10 {
			t.Errorf("platform %d: acked revision %d, want 10", id, tf.catalog.acked[id])
		}
	}
	if r := byID[2]; r.Outcome != OutcomeUnreachable || r.Message == "" {
		t.Errorf("platform 2: %+v, want unreachable", r)
	}
	if r := byID[3]; r.Outcome != OutcomeFailed || r.Code != "internal" || r.Message != "disk full" {
		t.Errorf("platform 3: %+v, want failed internal: disk full", r)
	}
	if r := byID[4]; r.Outcome != OutcomeFailed || r.Code != "conflict" || r.AgentRevision != 99 || r.Enrolled {
		t.Errorf("platform 4: %+v, want failed conflict with agent revision 99", r)
	}
	if len(tf.catalog.results) != 5 {
		t.Errorf("catalog recorded %d results, want 5", len(tf.catalog.results))
	}

	// Progress: every agent reaches done once, Done counts up to Total.
	doneFor := map[int64]int{}
	last := 0
	for _, p := range log.events {
		if p.Total != 5 {
			t.Fatalf("progress total = %d, want 5", p.Total)
		}
		if p.Done < last {
			t.Fatalf("progress done went back from %d to %d", last, p.Done)
		}
		last = p.Done
		if p.Phase == PhaseDone {
			doneFor[p.PlatformID]++
			if p.Result == nil || p.Result.PlatformID != p.PlatformID {
				t.Fatalf("done without its result: %+v", p)
			}
		}
	}
	if last != 5 || len(doneFor) != 5 {
		t.Fatalf("progress: done %d, agents done %v", last, doneFor)
	}
	phases := map[string]bool{}
	for _, p := range log.events {
		if p.PlatformID == 1 {
			phases[p.Phase] = true
		}
	}
	for _, ph := range []string{PhaseHealth, PhaseEnroll, PhasePush, PhaseDone} {
		if !phases[ph] {
			t.Errorf("platform 1 reported no %s phase", ph)
		}
	}

	t.Run("second press is idempotent", func(t *testing.T) {
		tf.agent(3).set(func(a *fakeAgent) { a.failPut = nil })
		rep, err := s.SyncPlatforms(ctx, SyncOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK != 3 || rep.Failed != 1 || rep.Unreachable != 1 {
			t.Fatalf("second press: %+v", rep)
		}
		for _, id := range []int64{1, 3, 5} {
			if n := countRequests(tf.agent(id), http.MethodPost, "/api/enroll"); n != 1 {
				t.Errorf("platform %d enrolled %d times, want once", id, n)
			}
		}
		if n := tf.agent(1).putCount(); n != 2 {
			t.Errorf("platform 1 received %d PUTs, want 2", n)
		}
	})
	t.Run("only some platforms", func(t *testing.T) {
		rep, err := s.SyncPlatforms(ctx, SyncOptions{PlatformIDs: []int64{5}})
		if err != nil || len(rep.Results) != 1 || rep.Results[0].PlatformID != 5 || rep.OK != 1 {
			t.Fatalf("report = %+v, %v", rep, err)
		}
	})
}

func TestSyncer_SyncPlatformsBoundsConcurrency(t *testing.T) {
	tf := newTestFleet(t, 40, false)
	var counter inFlight
	for _, a := range tf.agents {
		a.set(func(a *fakeAgent) { a.inFlight, a.delay = &counter, 5*time.Millisecond })
	}
	s := newTestSyncer(tf, SyncerOptions{})
	t.Cleanup(s.Close)
	rep, err := s.SyncPlatforms(t.Context(), SyncOptions{Concurrency: 4})
	if err != nil || rep.OK != 40 {
		t.Fatalf("report = %+v, %v", rep, err)
	}
	if peak := counter.peak.Load(); peak > 4 || peak < 2 {
		t.Fatalf("peak requests in flight = %d, want 2..4", peak)
	}
}

func TestSyncer_SyncPlatformsFingerprints(t *testing.T) {
	ctx := t.Context()
	t.Run("changed", func(t *testing.T) {
		tf := newTestFleet(t, 2, true)
		other := newFakeAgent(t, testSyncToken, true)
		tf.catalog.fleet.Platforms[0].TLSFingerprint = other.Fingerprint()
		s := newTestSyncer(tf, SyncerOptions{TrustOnFirstUse: true})
		t.Cleanup(s.Close)
		rep, err := s.SyncPlatforms(ctx, SyncOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := rep.Results[0]
		if r.Outcome != OutcomeFailed || r.Code != CodeFingerprintChanged || r.Fingerprint != tf.agent(1).Fingerprint() {
			t.Fatalf("result = %+v, want fingerprint_changed with the fingerprint seen", r)
		}
		if _, _, _, reqs := tf.agent(1).snapshot(); len(reqs) != 0 {
			t.Fatalf("the agent with the changed certificate received %d requests", len(reqs))
		}
		if tf.catalog.pending[1] != tf.agent(1).Fingerprint() {
			t.Fatal("the changed fingerprint was not kept as pending")
		}
		if rep.Results[1].Outcome != OutcomeOK {
			t.Fatalf("platform 2: %+v", rep.Results[1])
		}
	})
	t.Run("trust on first use", func(t *testing.T) {
		tf := newTestFleet(t, 2, true)
		tf.catalog.fleet.Platforms[1].TLSFingerprint = ""
		s := newTestSyncer(tf, SyncerOptions{TrustOnFirstUse: true})
		t.Cleanup(s.Close)
		rep, err := s.SyncPlatforms(ctx, SyncOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := rep.Results[1]
		if r.Outcome != OutcomeOK || r.Pinned != tf.agent(2).Fingerprint() {
			t.Fatalf("result = %+v, want ok and pinned", r)
		}
		// The pin bumped the revision, and the peer entry of platform 1 carries it.
		if rep.Revision != 11 {
			t.Fatalf("revision = %d, want 11 after the pin", rep.Revision)
		}
		st, _, _, _ := tf.agent(1).snapshot()
		if len(st.Peers) != 1 || st.Peers[0].TLSFingerprint != tf.agent(2).Fingerprint() {
			t.Fatalf("peers of 1 = %+v, want 2 with its fingerprint", st.Peers)
		}
	})
	t.Run("not pinned without trust on first use", func(t *testing.T) {
		tf := newTestFleet(t, 2, true)
		tf.catalog.fleet.Platforms[1].TLSFingerprint = ""
		s := newTestSyncer(tf, SyncerOptions{})
		t.Cleanup(s.Close)
		rep, err := s.SyncPlatforms(ctx, SyncOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r := rep.Results[1]; r.Outcome != OutcomeFailed || r.Code != CodeNotPinned {
			t.Fatalf("result = %+v, want not_pinned", r)
		}
		if _, _, _, reqs := tf.agent(2).snapshot(); len(reqs) != 0 {
			t.Fatal("an unpinned agent was contacted")
		}
	})
}

func TestSyncer_SyncPlatformsEnrollment(t *testing.T) {
	ctx := t.Context()
	tf := newTestFleet(t, 3, false)
	tf.agent(1).enroll(testPlatform(9, tf.agent(1).URL()), testToken(9))  // enrolled as another platform
	tf.agent(2).enroll(testPlatform(2, tf.agent(2).URL()), testToken(99)) // us, with another token
	tf.agent(3).enroll(testPlatform(3, tf.agent(3).URL()), testToken(3))  // us
	s := newTestSyncer(tf, SyncerOptions{})
	t.Cleanup(s.Close)
	rep, err := s.SyncPlatforms(ctx, SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.Code != string(protocol.CodeAlreadyEnrolled) || !strings.Contains(r.Message, "platform 9") {
		t.Errorf("platform 1: %+v, want already_enrolled as platform 9", r)
	}
	if r := rep.Results[1]; r.Code != string(protocol.CodeUnauthorized) {
		t.Errorf("platform 2: %+v, want unauthorized", r)
	}
	if r := rep.Results[2]; r.Outcome != OutcomeOK || r.Enrolled {
		t.Errorf("platform 3: %+v, want ok without a new enrollment", r)
	}
	for _, r := range rep.Results {
		for _, secret := range []string{testSyncToken, testToken(1), testToken(2), testToken(3)} {
			if strings.Contains(r.Message, secret) {
				t.Fatalf("result of %d leaks a token", r.PlatformID)
			}
		}
	}
}

func TestSyncer_SyncPlatformsWholeRunFailures(t *testing.T) {
	ctx := t.Context()
	t.Run("no sync token", func(t *testing.T) {
		tf := newTestFleet(t, 1, false)
		if err := tf.secrets.Delete(ctx, secrets.SyncTokenKey); err != nil {
			t.Fatal(err)
		}
		_, err := newTestSyncer(tf, SyncerOptions{}).SyncPlatforms(ctx, SyncOptions{})
		if !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("err = %v, want the keyring's not found", err)
		}
	})
	t.Run("catalog down", func(t *testing.T) {
		tf := newTestFleet(t, 1, false)
		tf.catalog.fleetErr = errors.New("disk I/O error")
		if _, err := newTestSyncer(tf, SyncerOptions{}).SyncPlatforms(ctx, SyncOptions{}); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("missing platform token", func(t *testing.T) {
		tf := newTestFleet(t, 3, false)
		if err := tf.secrets.Delete(ctx, secrets.PlatformKey(2)); err != nil {
			t.Fatal(err)
		}
		rep, err := newTestSyncer(tf, SyncerOptions{}).SyncPlatforms(ctx, SyncOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// 2 has no token; 1 delivers to 2 and cannot get its pair key; 3 is fine.
		if rep.Results[0].Code != CodeMissingToken || rep.Results[1].Code != CodeMissingToken ||
			rep.Results[2].Outcome != OutcomeOK {
			t.Fatalf("results = %+v", rep.Results)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		tf := newTestFleet(t, 4, false)
		for _, a := range tf.agents {
			a.set(func(a *fakeAgent) { a.delay = 200 * time.Millisecond })
		}
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		rep, err := newTestSyncer(tf, SyncerOptions{}).SyncPlatforms(cctx, SyncOptions{})
		if !errors.Is(err, context.DeadlineExceeded) || len(rep.Results) != 4 || rep.OK != 0 {
			t.Fatalf("report = %+v, err = %v", rep, err)
		}
	})
}
