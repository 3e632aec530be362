package agent_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// fakeSource is a function-field fake of agent.Source that records the states applied.
type fakeSource struct {
	ApplyFunc  func(ctx context.Context, st protocol.State, self int64) error
	StatusFunc func(ctx context.Context) (map[int64]protocol.SyncStatus, error)

	mu      sync.Mutex
	applied []appliedState
}

type appliedState struct {
	revision int64
	self     int64
	syncs    int
}

var _ agent.Source = (*fakeSource)(nil)

func (f *fakeSource) Apply(ctx context.Context, st protocol.State, self int64) error {
	f.mu.Lock()
	f.applied = append(f.applied, appliedState{st.Revision, self, len(st.Syncs)})
	f.mu.Unlock()
	if f.ApplyFunc != nil {
		return f.ApplyFunc(ctx, st, self)
	}
	return nil
}

func (f *fakeSource) Status(ctx context.Context) (map[int64]protocol.SyncStatus, error) {
	if f.StatusFunc != nil {
		return f.StatusFunc(ctx)
	}
	return nil, nil
}

func (f *fakeSource) appliedStates() []appliedState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]appliedState(nil), f.applied...)
}

// sourceState is testState with two more syncs: 20 from this platform to otherID, and 21
// from this platform's posts to its own pages (source and target at once).
func sourceState(revision int64) protocol.State {
	st := testState(revision)
	st.Syncs = append(st.Syncs,
		protocol.Sync{ID: 20, Status: true, Title: "blog.example (posts) to wiki.example (posts)",
			SourcePlatformID: selfID, SourceModel: "posts", TargetPlatformID: otherID, TargetModel: "posts",
			IfExists: "update", SyncAllFields: true, Interval: 60},
		protocol.Sync{ID: 21, Status: true, Title: "blog.example (posts) to blog.example (pages)",
			SourcePlatformID: selfID, SourceModel: "posts", TargetPlatformID: selfID, TargetModel: "pages",
			IfExists: "update", SyncAllFields: true, Interval: 60})
	return st
}

func TestSource_FollowsTheStateInForce(t *testing.T) {
	src := &fakeSource{}
	ta := mustStartAgent(t, func(o *agent.Options) { o.Source = src })
	if got := src.appliedStates(); len(got) != 1 || got[0] != (appliedState{0, 0, 0}) {
		t.Fatalf("at start, before enrollment: %+v", got)
	}
	ta.enroll()
	ta.putState(sourceState(1))
	ta.putState(sourceState(1)) // the same revision again is applied again: idempotent
	st := sourceState(2)
	st.Syncs = st.Syncs[:3]
	ta.putState(st)
	want := []appliedState{{0, 0, 0}, {1, selfID, 4}, {1, selfID, 4}, {2, selfID, 3}}
	if got := src.appliedStates(); !equalStates(got, want) {
		t.Fatalf("applied %+v, want %+v", got, want)
	}

	// After a restart the state in force is applied before anything is served.
	ta.restart()
	if got := src.appliedStates(); len(got) != 5 || got[4] != (appliedState{2, selfID, 3}) {
		t.Fatalf("after restart: %+v", got)
	}

	// A Source that cannot follow does not fail the change of state: it keeps trying.
	src.ApplyFunc = func(context.Context, protocol.State, int64) error { return errors.New("no triggers today") }
	ta.putState(sourceState(3))
	if got := ta.syncStatus(20); got.Role != "source" {
		t.Fatalf("status of sync 20: %+v", got)
	}
}

func equalStates(a, b []appliedState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStatus_SourceAndTargetRoles(t *testing.T) {
	msg := "POST https://wiki.example:7443/sync-webhook: connection refused"
	src := &fakeSource{StatusFunc: func(context.Context) (map[int64]protocol.SyncStatus, error) {
		last := "2026-11-26T12:00:01Z"
		return map[int64]protocol.SyncStatus{
			20: {ID: 20, Role: "source", Status: true, LastSync: &last, Pending: 12, Sent: 1200, LagMS: 350,
				HasErrors: true, ErrorMessage: &msg},
			21: {ID: 21, Role: "source", Status: true, Sent: 5},
		}, nil
	}}
	ta := mustStartAgent(t, func(o *agent.Options) { o.Source = src })
	ta.enroll()
	ta.putState(sourceState(1))

	res := ta.control(http.MethodGet, "/api/status", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("status: %d %s", res.Status, res.Body)
	}
	var st protocol.Status
	res.json(t, &st)
	type entry struct {
		id   int64
		role string
	}
	got := map[entry]protocol.SyncStatus{}
	for _, s := range st.Syncs {
		got[entry{s.ID, s.Role}] = s
	}
	if len(st.Syncs) != 5 || len(got) != 5 {
		t.Fatalf("want one entry per sync and role (7, 8 and 21 as target, 20 and 21 as source): %s", res.Body)
	}
	for _, e := range []entry{{7, "target"}, {8, "target"}, {20, "source"}, {21, "source"}, {21, "target"}} {
		if _, ok := got[e]; !ok {
			t.Errorf("no entry %+v: %s", e, res.Body)
		}
	}
	s := got[entry{20, "source"}]
	if s.Pending != 12 || s.Sent != 1200 || s.LagMS != 350 || !s.HasErrors || s.ErrorMessage == nil ||
		*s.ErrorMessage != msg || s.LastSync == nil {
		t.Fatalf("source entry of sync 20: %s", res.Body)
	}
	if s := got[entry{21, "source"}]; s.Sent != 5 || s.HasErrors {
		t.Fatalf("source entry of sync 21: %+v", s)
	}
	if s := got[entry{21, "target"}]; s.Sent != 0 || s.Applied != 0 || s.HasErrors {
		t.Fatalf("target entry of sync 21: %+v", s)
	}

	src.StatusFunc = func(context.Context) (map[int64]protocol.SyncStatus, error) {
		return nil, errors.New("state file busy")
	}
	if res := ta.control(http.MethodGet, "/api/status", nil); res.Status != http.StatusInternalServerError {
		t.Fatalf("status with a failing source: %d %s", res.Status, res.Body)
	}
}
