package state_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

func mustOpen(tb testing.TB, dir string) *state.Store {
	tb.Helper()
	s, err := state.Open(context.Background(), dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore_FileMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := mustOpen(t, dir)
	if err := s.SaveEnrollment(context.Background(), state.Enrollment{Platform: protocol.Platform{ID: 1}, PlatformToken: "t"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{s.Path(), s.Path() + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", p, fi.Mode().Perm())
		}
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode = %v, %v", fi.Mode().Perm(), err)
	}
}

func TestStore_Enrollment(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	ctx := context.Background()
	if _, err := s.Enrollment(ctx); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("enrollment before = %v, want ErrNotFound", err)
	}
	e := state.Enrollment{Platform: protocol.Platform{ID: 3, Name: "blog"}, PlatformToken: "secret", EnrolledAt: time.UnixMilli(1000).UTC()}
	if err := s.SaveEnrollment(ctx, e); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s = mustOpen(t, dir)
	got, err := s.Enrollment(ctx)
	if err != nil || got.Platform.ID != 3 || got.PlatformToken != "secret" || !got.EnrolledAt.Equal(e.EnrolledAt) {
		t.Fatalf("enrollment = %+v, %v", got, err)
	}
}

func TestStore_DesiredState(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	ctx := context.Background()
	if _, err := s.DesiredState(ctx); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("before = %v", err)
	}
	now := time.Now()
	if err := s.PutState(ctx, protocol.State{Revision: 5}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.PutState(ctx, protocol.State{Revision: 5, Syncs: []protocol.Sync{{ID: 1}}}, now); err != nil {
		t.Fatalf("same revision: %v", err)
	}
	if err := s.PutState(ctx, protocol.State{Revision: 4}, now); !errors.Is(err, state.ErrStaleRevision) {
		t.Fatalf("older revision: %v, want ErrStaleRevision", err)
	}
	got, err := s.DesiredState(ctx)
	if err != nil || got.Revision != 5 || len(got.Syncs) != 1 {
		t.Fatalf("state = %+v, %v", got, err)
	}
}

func TestStore_Remember(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	ctx := context.Background()
	t0 := time.Now()
	remember := func(s *state.Store, id string, at time.Time) bool {
		t.Helper()
		seen, err := s.Remember(ctx, id, at)
		if err != nil {
			t.Fatal(err)
		}
		return seen
	}
	if remember(s, "a", t0) {
		t.Fatal("fresh id reported seen")
	}
	if !remember(s, "a", t0.Add(time.Minute)) {
		t.Fatal("id not reported seen within the window")
	}
	_ = s.Close()
	s = mustOpen(t, dir)
	if !remember(s, "a", t0.Add(9*time.Minute)) {
		t.Fatal("id forgotten by a restart")
	}
	if remember(s, "a", t0.Add(11*time.Minute)) {
		t.Fatal("id still seen after the window")
	}
	remember(s, "b", t0)
	n, err := s.PruneSeen(ctx, t0.Add(protocol.ReplayWindow+time.Second))
	if err != nil || n != 1 {
		t.Fatalf("prune = %d, %v; want 1 (b)", n, err)
	}
}

func TestStore_Inbox(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	add := func(id string, syncID, first int64, count int) {
		t.Helper()
		added, _, err := s.AddBatch(ctx, state.Batch{BatchID: id, SyncID: syncID, SourcePlatformID: 1, FirstSeq: first,
			LastSeq: first + int64(count) - 1, Count: count, Body: []byte(`{"id":"` + id + `"}`), ReceivedAt: now,
			OldestChangeAt: now.Add(-time.Second)})
		if err != nil || !added {
			t.Fatalf("add %s: %v %v", id, added, err)
		}
	}
	add("b3", 7, 30, 1)
	add("b1", 7, 10, 2)
	add("x1", 8, 1, 5)

	added, prev, err := s.AddBatch(ctx, state.Batch{BatchID: "b1", SyncID: 7, SourcePlatformID: 1, Body: []byte("{}")})
	if err != nil || added || prev.BatchID != "b1" || prev.Status != state.StatusPending || prev.Count != 2 {
		t.Fatalf("duplicate add = %v %+v %v", added, prev, err)
	}

	next, err := s.NextBatch(ctx, 7)
	if err != nil || next.BatchID != "b1" || string(next.Body) != `{"id":"b1"}` {
		t.Fatalf("next = %+v, %v", next, err)
	}
	if err := s.RecordFailure(ctx, "b1", 1, "boom"); err != nil {
		t.Fatal(err)
	}
	reports, err := s.Reports(ctx)
	if err != nil || reports[7].Pending != 3 || !reports[7].Retrying || reports[7].LastError != "boom" ||
		!reports[7].OldestPending.Equal(now.Add(-time.Second)) {
		t.Fatalf("reports = %+v, %v", reports[7], err)
	}
	next.Attempts = 1
	if err := s.MarkApplied(ctx, state.Applied{Batch: next, StartedAt: now, FinishedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkApplied(ctx, state.Applied{Batch: next, StartedAt: now, FinishedAt: now}); err == nil {
		t.Fatal("a batch was marked applied twice")
	}
	b, err := s.LookupBatch(ctx, "b1")
	if err != nil || b.Status != state.StatusApplied {
		t.Fatalf("b1 = %+v, %v", b, err)
	}

	next, err = s.NextBatch(ctx, 7)
	if err != nil || next.BatchID != "b3" {
		t.Fatalf("next = %+v, %v", next, err)
	}
	next.Attempts = 5
	if err := s.MoveToDeadLetters(ctx, next, "gave up", now, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NextBatch(ctx, 7); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("next after all done = %v", err)
	}
	reports, err = s.Reports(ctx)
	r := reports[7]
	if err != nil || r.Pending != 0 || r.Applied != 2 || r.Failed != 1 || r.DeadLetters != 1 || r.LastError != "gave up" ||
		!r.LastSync.Equal(now) || r.Retrying {
		t.Fatalf("report = %+v, %v", r, err)
	}
	if reports[8].Pending != 5 {
		t.Fatalf("report of sync 8 = %+v", reports[8])
	}
	dead, err := s.DeadLetters(ctx, 7)
	if err != nil || len(dead) != 1 || string(dead[0].Body) != `{"id":"b3"}` || dead[0].Attempts != 5 {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
	c, err := s.ApplyCursor(ctx, 7)
	if err != nil || c.BatchID != "b3" || c.LastSeq != 30 {
		t.Fatalf("cursor = %+v, %v", c, err)
	}
}

func TestStore_TokenRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpen(t, dir)
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	if _, err := s.RotateToken(ctx, "new", t0); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("rotate before enrollment = %v, want ErrNotFound", err)
	}
	if err := s.SaveEnrollment(ctx, state.Enrollment{Platform: protocol.Platform{ID: 2}, PlatformToken: "old", EnrolledAt: t0}); err != nil {
		t.Fatal(err)
	}
	tokens := func(e state.Enrollment) string {
		return e.PlatformToken + "/" + e.PreviousToken
	}

	e, err := s.RotateToken(ctx, "new1", t0)
	if err != nil || tokens(e) != "new1/old" || !e.RotationPending() || !e.RotatedAt.Equal(t0) {
		t.Fatalf("rotate = %s pending %v, %v", tokens(e), e.RotationPending(), err)
	}
	if got := e.ControlTokens(); len(got) != 2 || got[0] != "new1" || got[1] != "old" {
		t.Fatalf("control tokens while pending = %v", got)
	}
	e, err = s.RotateToken(ctx, "new2", t0.Add(time.Second))
	if err != nil || tokens(e) != "new2/old" {
		t.Fatalf("second rotation while pending = %s, %v", tokens(e), err)
	}
	// Confirming a replaced token does nothing; the pending one confirms once.
	if _, ok, err := s.ConfirmToken(ctx, "new1", t0); err != nil || ok {
		t.Fatalf("confirm replaced token = %v, %v", ok, err)
	}
	t1 := t0.Add(time.Minute)
	e, ok, err := s.ConfirmToken(ctx, "new2", t1)
	if err != nil || !ok || e.RotationPending() || !e.ConfirmedAt.Equal(t1) {
		t.Fatalf("confirm = %v %+v, %v", ok, e.ConfirmedAt, err)
	}
	if _, ok, _ := s.ConfirmToken(ctx, "new2", t1.Add(time.Minute)); ok {
		t.Fatal("confirmed twice")
	}
	_ = s.Close()
	s = mustOpen(t, dir)
	e, err = s.Enrollment(ctx)
	if err != nil || tokens(e) != "new2/old" || !e.ConfirmedAt.Equal(t1) || !e.EnrolledAt.Equal(t0) {
		t.Fatalf("after reopen = %s confirmed %v, %v", tokens(e), e.ConfirmedAt, err)
	}
	if got := e.ControlTokens(); len(got) != 1 || got[0] != "new2" {
		t.Fatalf("control tokens after confirmation = %v", got)
	}
	grace := 15 * time.Minute
	if got := e.DataTokens(t1.Add(grace-time.Millisecond), grace); len(got) != 2 {
		t.Fatalf("data tokens in the grace = %v", got)
	}
	if got := e.DataTokens(t1.Add(grace), grace); len(got) != 1 || got[0] != "new2" {
		t.Fatalf("data tokens after the grace = %v", got)
	}
	// The previous token is erased only once its grace is over.
	if _, forgot, err := s.ForgetPreviousToken(ctx, t1.Add(-time.Millisecond)); err != nil || forgot {
		t.Fatalf("forget too early = %v, %v", forgot, err)
	}
	e, forgot, err := s.ForgetPreviousToken(ctx, t1)
	if err != nil || !forgot || tokens(e) != "new2/" {
		t.Fatalf("forget = %v %s, %v", forgot, tokens(e), err)
	}
	// The token in force again is no rotation; giving the previous one back withdraws one.
	if e, err = s.RotateToken(ctx, "new2", t1); err != nil || tokens(e) != "new2/" || e.RotationPending() {
		t.Fatalf("same token = %s, %v", tokens(e), err)
	}
	if e, err = s.RotateToken(ctx, "new3", t1); err != nil || tokens(e) != "new3/new2" || !e.ConfirmedAt.IsZero() {
		t.Fatalf("rotation after a confirmed one = %s, %v", tokens(e), err)
	}
	if e, err = s.RotateToken(ctx, "new2", t1); err != nil || tokens(e) != "new2/" || e.RotationPending() {
		t.Fatalf("withdrawn rotation = %s, %v", tokens(e), err)
	}
}

func TestStore_PruneAndRequeue(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	add := func(id string, first int64, count int) state.Batch {
		t.Helper()
		b := state.Batch{BatchID: id, SyncID: 7, SourcePlatformID: 1, FirstSeq: first, LastSeq: first + int64(count) - 1,
			Count: count, Body: []byte(`{"id":"` + id + `"}`), ReceivedAt: t0, OldestChangeAt: t0}
		if added, _, err := s.AddBatch(ctx, b); err != nil || !added {
			t.Fatalf("add %s: %v %v", id, added, err)
		}
		return b
	}
	late, early, applied := add("late", 50, 2), add("early", 10, 1), add("applied", 20, 1)
	late.Attempts, early.Attempts = 5, 5
	for _, b := range []state.Batch{late, early} {
		if err := s.MoveToDeadLetters(ctx, b, "boom "+b.BatchID, t0, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkApplied(ctx, state.Applied{Batch: applied, StartedAt: t0, FinishedAt: t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}

	list, err := s.DeadLetterList(ctx, 7)
	if err != nil || len(list) != 2 || list[0].Body != nil || list[0].Reason == "" {
		t.Fatalf("dead letter list = %+v, %v", list, err)
	}
	if empty, err := s.DeadLetterList(ctx, 99); err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("dead letters of another sync = %#v, %v; want an empty list", empty, err)
	}

	ids, err := s.RequeueDeadLetters(ctx, 7)
	if err != nil || len(ids) != 2 || ids[0] != "early" || ids[1] != "late" {
		t.Fatalf("requeue = %v, %v; want early, late", ids, err)
	}
	r, err := s.Reports(ctx)
	if err != nil || r[7].Pending != 3 || !r[7].Requeued || r[7].Retrying || r[7].DeadLetters != 0 || r[7].Failed != 0 ||
		r[7].LastError == "" {
		t.Fatalf("report after requeue = %+v, %v", r[7], err)
	}
	next, err := s.NextBatch(ctx, 7)
	if err != nil || next.BatchID != "early" || next.Attempts != 0 || string(next.Body) != `{"id":"early"}` {
		t.Fatalf("next = %+v %s, %v", next, next.Body, err)
	}
	if again, err := s.RequeueDeadLetters(ctx, 7); err != nil || len(again) != 0 {
		t.Fatalf("second requeue = %v, %v", again, err)
	}

	// Pruning deletes applied batches done at or before the cut only.
	if n, err := s.PruneInbox(ctx, t0); err != nil || n != 0 {
		t.Fatalf("prune before done = %d, %v", n, err)
	}
	if n, err := s.PruneInbox(ctx, t0.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("prune = %d, %v", n, err)
	}
	if _, err := s.LookupBatch(ctx, "applied"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("pruned batch lookup = %v", err)
	}
	if n, err := s.PruneInbox(ctx, t0.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("prune of pending batches = %d, %v", n, err)
	}
}

func TestStore_ReconcileRunsKeptAndPruned(t *testing.T) {
	ctx := context.Background()
	s, err := state.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i := 0; i < state.ReconcileRunsKept+3; i++ {
		id := fmt.Sprintf("run-%02d", i)
		if err := s.SaveReconcileRun(ctx, 9, id, t0.Add(time.Duration(i)*time.Second), []byte(`{"run_id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveReconcileRun(ctx, 9, "run-22", t0.Add(22*time.Second), []byte(`{"run_id":"run-22","state":"done"}`)); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReconcileRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runs := got[9]
	if len(runs) != state.ReconcileRunsKept || string(runs[0]) != `{"run_id":"run-03"}` ||
		string(runs[len(runs)-1]) != `{"run_id":"run-22","state":"done"}` {
		t.Fatalf("runs: %d, first %s, last %s", len(runs), runs[0], runs[len(runs)-1])
	}
}
