package agent_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

func TestWorkers_OrderAndStatus(t *testing.T) {
	ta := mustStartAgent(t, nil)
	release := make(chan struct{})
	ta.applier.ApplyBatchFunc = func(ctx context.Context, s protocol.Sync, b *protocol.Batch) (agent.ApplyResult, error) {
		if b.BatchID == "first" {
			<-release
		}
		return agent.ApplyResult{}, nil
	}
	ta.mustReady()

	// "first" blocks the worker; meanwhile later batches arrive out of seq order.
	for _, b := range []protocol.Batch{
		testBatch("first", 7, sourceID, 1, 2),
		testBatch("fourth", 7, sourceID, 9),
		testBatch("second", 7, sourceID, 3, 4),
		testBatch("third", 7, sourceID, 5),
	} {
		if res := ta.deliver(sourceID, b); res.Status != http.StatusAccepted {
			t.Fatalf("deliver %s = %d %s", b.BatchID, res.Status, res.Body)
		}
	}
	st := ta.syncStatus(7)
	if st.Role != "target" || st.Pending < 4 || st.LagMS <= 0 || st.HasErrors || st.ErrorMessage != nil {
		t.Fatalf("status while pending = %+v", st)
	}
	close(release)
	waitFor(t, "all applied", func() bool { return len(ta.applier.Applied()) == 4 })
	want := []string{"first", "second", "third", "fourth"}
	if got := ta.applier.Applied(); !slices.Equal(got, want) {
		t.Fatalf("applied in order %v, want %v", got, want)
	}
	waitFor(t, "status applied", func() bool { return ta.syncStatus(7).Applied == 6 })
	st = ta.syncStatus(7)
	if st.Pending != 0 || st.LagMS != 0 || st.LastSync == nil || st.Failed != 0 || !st.Status {
		t.Fatalf("status after apply = %+v", st)
	}
	c, err := ta.store.ApplyCursor(context.Background(), 7)
	if err != nil || c.BatchID != "fourth" || c.LastSeq != 9 {
		t.Fatalf("apply cursor = %+v, %v", c, err)
	}
}

func TestWorkers_RetryThenDeadLetter(t *testing.T) {
	ta := mustStartAgent(t, nil)
	var mu sync.Mutex
	attempts := map[string]int{}
	ta.applier.ApplyBatchFunc = func(ctx context.Context, s protocol.Sync, b *protocol.Batch) (agent.ApplyResult, error) {
		mu.Lock()
		defer mu.Unlock()
		attempts[b.BatchID]++
		if b.BatchID == "bad" {
			return agent.ApplyResult{}, protocol.Errorf(protocol.CodeConflict, "row with ulid 01HZ1 exists (if_exists: error)")
		}
		if b.BatchID == "flaky" && attempts[b.BatchID] < 2 {
			return agent.ApplyResult{}, errors.New("database is locked")
		}
		return agent.ApplyResult{}, nil
	}
	ta.mustReady()

	for _, d := range []struct {
		b      protocol.Batch
		sender int64
	}{
		{testBatch("bad", 7, sourceID, 1), sourceID},
		{testBatch("after-bad", 7, sourceID, 2), sourceID},
		{testBatch("flaky", 8, otherID, 1), otherID},
	} {
		if res := ta.deliver(d.sender, d.b); res.Status != http.StatusAccepted {
			t.Fatalf("deliver = %d %s", res.Status, res.Body)
		}
	}
	waitFor(t, "after-bad and flaky applied", func() bool { return len(ta.applier.Applied()) == 2 })
	mu.Lock()
	if attempts["bad"] != 3 || attempts["flaky"] != 2 {
		t.Fatalf("attempts = %v, want bad 3 (the bound) and flaky 2", attempts)
	}
	mu.Unlock()

	st := ta.syncStatus(7)
	if !st.HasErrors || st.ErrorMessage == nil || *st.ErrorMessage != "row with ulid 01HZ1 exists (if_exists: error)" ||
		st.Failed != 1 || st.Applied != 1 {
		t.Fatalf("status of sync 7 = %+v", st)
	}
	if other := ta.syncStatus(8); other.HasErrors || other.Applied != 1 {
		t.Fatalf("status of sync 8 = %+v", other)
	}
	dead, err := ta.store.DeadLetters(context.Background(), 7)
	if err != nil || len(dead) != 1 || dead[0].BatchID != "bad" || dead[0].Attempts != 3 || len(dead[0].Body) == 0 {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
	runs, err := ta.store.Runs(context.Background(), 7, 10)
	if err != nil || len(runs) != 2 || runs[0].Outcome != state.OutcomeApplied || runs[1].Outcome != state.OutcomeDead {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	// A dead batch is still a duplicate for its sender.
	if res := ta.deliver(sourceID, testBatch("bad", 7, sourceID, 1)); res.Status != http.StatusOK {
		t.Fatalf("redelivery of a dead batch = %d %s", res.Status, res.Body)
	}
}

func TestWorkers_AlreadyAppliedIsRecorded(t *testing.T) {
	ta := mustStartAgent(t, nil)
	ta.applier.ApplyBatchFunc = func(ctx context.Context, s protocol.Sync, b *protocol.Batch) (agent.ApplyResult, error) {
		return agent.ApplyResult{AlreadyApplied: true}, nil
	}
	ta.mustReady()
	ta.deliver(sourceID, testBatch("b1", 7, sourceID, 1, 2))
	waitFor(t, "recorded", func() bool { return ta.syncStatus(7).Applied == 2 })
	runs, err := ta.store.Runs(context.Background(), 7, 10)
	if err != nil || len(runs) != 1 || runs[0].Outcome != state.OutcomeAlreadyApplied {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
}

func TestWorkers_LockedPlatformPauses(t *testing.T) {
	ta := mustStartAgent(t, nil)
	release := make(chan struct{})
	ta.applier.ApplyBatchFunc = func(ctx context.Context, s protocol.Sync, b *protocol.Batch) (agent.ApplyResult, error) {
		if b.BatchID == "b1" {
			<-release
		}
		return agent.ApplyResult{}, nil
	}
	ta.mustReady()
	ta.deliver(sourceID, testBatch("b1", 7, sourceID, 1))
	ta.deliver(sourceID, testBatch("b2", 7, sourceID, 2))
	locked := testState(2)
	locked.Platforms[1].Locked = true
	ta.putState(locked)
	close(release)
	waitFor(t, "b1 applied", func() bool { return len(ta.applier.Applied()) == 1 })
	time.Sleep(50 * time.Millisecond)
	if got := ta.applier.Applied(); len(got) != 1 {
		t.Fatalf("applied %v while the platform is locked", got)
	}
	ta.putState(testState(3))
	waitFor(t, "b2 applied after unlocking", func() bool { return len(ta.applier.Applied()) == 2 })
}

func TestWorkers_StopFinishesTheBatchInProgress(t *testing.T) {
	ta := mustStartAgent(t, nil)
	started := make(chan struct{})
	release := make(chan struct{})
	ta.applier.ApplyBatchFunc = func(ctx context.Context, s protocol.Sync, b *protocol.Batch) (agent.ApplyResult, error) {
		close(started)
		<-release
		return agent.ApplyResult{}, ctx.Err()
	}
	ta.mustReady()
	ta.deliver(sourceID, testBatch("b1", 7, sourceID, 1))
	<-started
	stopped := make(chan struct{})
	go func() {
		ta.agent.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a batch was being applied")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-stopped
	b, err := ta.store.LookupBatch(context.Background(), "b1")
	if err != nil || b.Status != state.StatusApplied {
		t.Fatalf("batch after stop = %+v, %v", b, err)
	}
}

func TestWorkers_SyncsStartAndStopWithTheState(t *testing.T) {
	ta := mustStartAgent(t, nil)
	ta.mustReady()
	st := testState(2)
	st.Syncs = st.Syncs[:1] // sync 8 leaves
	ta.putState(st)
	// Sync 8 is no longer authorised.
	if res := ta.deliver(otherID, testBatch("b8", 8, otherID, 1)); res.Status != http.StatusForbidden {
		t.Fatalf("= %d %s, want 403", res.Status, res.Body)
	}
	ta.putState(testState(3))
	if res := ta.deliver(otherID, testBatch("b8", 8, otherID, 1)); res.Status != http.StatusAccepted {
		t.Fatalf("= %d %s, want 202", res.Status, res.Body)
	}
	waitFor(t, "b8 applied", func() bool { return len(ta.applier.Applied()) == 1 })
}
