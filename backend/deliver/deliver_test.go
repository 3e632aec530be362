package deliver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/deliver"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

func TestSender_DeliversInOrder(t *testing.T) {
	rc := newReceiver(t, false)
	e := newEnv(t, fastOptions)
	e.apply(stateWith(rc.peer()))

	rows := posts("a", 2000) // the first two batches are full
	rows = append(rows,
		row{ulid: "echo-1", origin: target},         // came from the target: not sent back
		row{model: "pages", ulid: "page-1"},         // another model
		row{ulid: "relayed", origin: 3},             // came from platform 3: sent, origin kept
		row{ulid: "a-5", op: protocol.EventUpdated}, // an update
		row{ulid: "a-6", op: protocol.EventDeleted}, // a delete: no data
		row{ulid: "echo-2", origin: target, op: "deleted"},
	)
	rows = append(rows, posts("b", 500)...)
	e.appendRows(rows...)
	maxID, _ := e.q.MaxID(context.Background())
	waitFor(t, 10*time.Second, "the cursor to reach the end of the queue", func() bool {
		c, _ := e.cursor()
		return c == maxID
	})
	rc.check()

	got := rc.acceptedChanges()
	if len(got) != 2503 {
		t.Fatalf("delivered %d changes, want 2503", len(got))
	}
	var batchSizes []int
	for _, r := range rc.snapshot() {
		batchSizes = append(batchSizes, len(r.Batch.Changes))
	}
	if batchSizes[0] != 1000 || batchSizes[1] != 1000 {
		t.Errorf("batch sizes %v: want the first two full", batchSizes)
	}
	for i, c := range got {
		if i > 0 && c.Seq <= got[i-1].Seq {
			t.Fatalf("change %d: seq %d after %d", i, c.Seq, got[i-1].Seq)
		}
		if c.Model != "posts" || c.Key.Field != "ulid" || c.ShouldDelete {
			t.Fatalf("change %d: %+v", i, c)
		}
		ulid, _ := c.Key.Value.(string)
		if strings.HasPrefix(ulid, "echo") || strings.HasPrefix(ulid, "page") {
			t.Errorf("change %d (%s) should not have been sent", i, ulid)
		}
		wantOrigin := int64(self)
		if ulid == "relayed" {
			wantOrigin = 3
		}
		if c.OriginPlatformID != wantOrigin {
			t.Errorf("change %d (%s): origin %d, want %d", i, ulid, c.OriginPlatformID, wantOrigin)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", c.ChangedAt); err != nil {
			t.Errorf("change %d: changed_at %q: %v", i, c.ChangedAt, err)
		}
		switch c.EventType {
		case protocol.EventDeleted:
			if c.Data != nil || ulid != "a-6" {
				t.Errorf("delete %d: %+v", i, c)
			}
		default:
			if c.Data["ulid"] != ulid || c.Data["views"] != json.Number("42") || c.Data["published"] != true {
				t.Errorf("change %d: data %v", i, c.Data)
			}
		}
	}
	st := e.status()
	if st.Sent != 2503 || st.Pending != 0 || st.HasErrors || st.LastSync == nil || st.Role != "source" {
		t.Errorf("status = %+v", st)
	}
}

func TestSender_KeyFields(t *testing.T) {
	rc := newReceiver(t, false)
	e := newEnv(t, fastOptions)
	if err := e.m.Apply(context.Background(), stateWith(rc.peer()), self,
		deliverConfig("slug", "title")); err != nil {
		t.Fatal(err)
	}
	// No slug in the images: the title is the key. A row without either is reported.
	e.appendRows(row{ulid: "x"})
	waitFor(t, 5*time.Second, "one change", func() bool { return rc.changeCount() == 1 })
	c := rc.acceptedChanges()[0]
	if c.Key.Field != "title" || c.Key.Value != "Post x" {
		t.Errorf("key = %+v, want title", c.Key)
	}
	rc.check()
}

// TestSender_RetriesSameBatch answers 500 three times: the sender sends the same batch
// (same id, same body) again, and its cursor stays put until the batch is accepted.
func TestSender_RetriesSameBatch(t *testing.T) {
	rc := newReceiver(t, false)
	e := newEnv(t, fastOptions)
	var checks atomic.Int32
	rc.respond = func(r request, attempt int) (int, http.Header, string) {
		cursor, inflight := e.cursor()
		if cursor != 0 || inflight != r.ID {
			rc.fail("during attempt %d: cursor %d, in flight %q, want 0 and %s", attempt, cursor, inflight, r.ID)
		}
		checks.Add(1)
		if attempt < 3 {
			return http.StatusInternalServerError, nil, `{"error":{"code":"internal","message":"boom"}}`
		}
		return http.StatusAccepted, nil, ""
	}
	e.apply(stateWith(rc.peer()))
	e.appendRows(posts("a", 10)...)
	waitFor(t, 5*time.Second, "the batch to be accepted", func() bool { return rc.changeCount() == 10 })
	rc.check()
	reqs := rc.snapshot()
	if len(reqs) != 4 || checks.Load() != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	for _, r := range reqs[1:] {
		if r.ID != reqs[0].ID || string(r.Body) != string(reqs[0].Body) {
			t.Errorf("retry %s differs from the first attempt %s", r.ID, reqs[0].ID)
		}
	}
	waitFor(t, 5*time.Second, "the cursor to advance", func() bool {
		c, inflight := e.cursor()
		return c == 10 && inflight == ""
	})
	if st := e.status(); st.HasErrors || st.Sent != 10 {
		t.Errorf("status after success = %+v", st)
	}
}

// TestSender_ResendAfterRestart stops the agent while a batch is in flight; the next
// Manager on the same state database sends the same range under the same id.
func TestSender_ResendAfterRestart(t *testing.T) {
	rc := newReceiver(t, false)
	e := newEnv(t, fastOptions)
	firstSeen := make(chan struct{})
	var first atomic.Value
	rc.respond = func(r request, attempt int) (int, http.Header, string) {
		if first.Load() == nil {
			first.Store(r.ID)
			close(firstSeen)
			// Stored, but the answer never arrives: the agent goes down first.
			return http.StatusServiceUnavailable, nil, ""
		}
		return http.StatusAccepted, nil, ""
	}
	e.apply(stateWith(rc.peer()))
	e.appendRows(posts("a", 1500)...)
	<-firstSeen
	e.stop()
	if _, inflight := e.cursor(); inflight != first.Load() {
		t.Fatalf("in flight after the stop: %q, want %v", inflight, first.Load())
	}

	rc.mu.Lock()
	rc.accepted[first.Load().(string)] = true // the receiver did store it
	rc.mu.Unlock()
	e.start(fastOptions)
	e.apply(stateWith(rc.peer()))
	waitFor(t, 5*time.Second, "the rest to be delivered", func() bool {
		c, _ := e.cursor()
		return c == 1500
	})
	rc.check()
	reqs := rc.snapshot()
	if reqs[1].ID != reqs[0].ID || string(reqs[1].Body) != string(reqs[0].Body) {
		t.Fatalf("after the restart the first request was %s, want a resend of %s", reqs[1].ID, reqs[0].ID)
	}
	var seqs []int64
	for _, r := range reqs[1:] {
		for _, c := range r.Batch.Changes {
			seqs = append(seqs, c.Seq)
		}
	}
	if len(seqs) != 1500 || !slices.IsSorted(seqs) || seqs[0] != 1 || seqs[1499] != 1500 {
		t.Errorf("after the restart: %d changes from %d to %d", len(seqs), seqs[0], seqs[len(seqs)-1])
	}
}

func TestSender_RetryAfter(t *testing.T) {
	rc := newReceiver(t, false)
	e := newEnv(t, fastOptions) // back-off of at most 20 ms: only Retry-After explains a long wait
	rc.respond = func(r request, attempt int) (int, http.Header, string) {
		if attempt == 0 {
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"1"}}, ""
		}
		return http.StatusAccepted, nil, ""
	}
	e.apply(stateWith(rc.peer()))
	e.appendRows(posts("a", 3)...)
	waitFor(t, 5*time.Second, "the batch to be accepted", func() bool { return rc.changeCount() == 3 })
	reqs := rc.snapshot()
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 950*time.Millisecond {
		t.Errorf("second attempt after %v, want Retry-After's 1 s", gap)
	}
	rc.check()
}

// TestSender_PermanentError keeps retrying a batch the target refuses, reports it, and never
// moves past it.
func TestSender_PermanentError(t *testing.T) {
	rc := newReceiver(t, false)
	e := newEnv(t, fastOptions)
	var refuse atomic.Bool
	refuse.Store(true)
	rc.respond = func(r request, attempt int) (int, http.Header, string) {
		if refuse.Load() {
			return http.StatusUnprocessableEntity, nil, `{"error":{"code":"unknown_column","message":"column \"x\" does not exist"}}`
		}
		return http.StatusAccepted, nil, ""
	}
	e.apply(stateWith(rc.peer()))
	e.appendRows(posts("a", 5)...)
	waitFor(t, 5*time.Second, "several attempts", func() bool { return len(rc.snapshot()) >= 3 })
	st := e.status()
	if !st.HasErrors || st.ErrorMessage == nil || !strings.Contains(*st.ErrorMessage, "unknown_column") ||
		st.Pending != 5 || st.Sent != 0 {
		t.Errorf("status while refused = %+v (%v)", st, deref(st.ErrorMessage))
	}
	if c, _ := e.cursor(); c != 0 {
		t.Errorf("cursor moved to %d past a refused batch", c)
	}
	refuse.Store(false)
	waitFor(t, 5*time.Second, "the batch to be accepted", func() bool { return rc.changeCount() == 5 })
	waitFor(t, 5*time.Second, "the error to clear", func() bool { return !e.status().HasErrors })
	rc.check()
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestSender_TLSPinning(t *testing.T) {
	rc := newReceiver(t, true)
	e := newEnv(t, fastOptions)
	good := rc.peer()
	bad := good
	bad.TLSFingerprint = "sha256:" + strings.Repeat("ab", 32)
	e.apply(stateWith(bad))
	e.appendRows(posts("a", 3)...)
	waitFor(t, 5*time.Second, "a fingerprint error", func() bool {
		st := e.status()
		return st.HasErrors && strings.Contains(deref(st.ErrorMessage), "fingerprint")
	})
	if n := len(rc.snapshot()); n != 0 {
		t.Fatalf("a peer with the wrong certificate received %d requests", n)
	}
	e.apply(stateWith(good)) // the admin accepted the new certificate
	waitFor(t, 5*time.Second, "delivery over TLS", func() bool { return rc.changeCount() == 3 })
	rc.check()

	noPin := good
	noPin.TLSFingerprint = ""
	e.apply(stateWith(noPin))
	if st := e.status(); !st.HasErrors || !strings.Contains(deref(st.ErrorMessage), "no pinned TLS fingerprint") {
		t.Errorf("https peer without a pin: status %+v (%s)", st, deref(st.ErrorMessage))
	}
}

// TestManager_Apply covers the life of syncs: a new sync starts at the end of the queue, a
// disabled one keeps its cursor but does not hold the purge back, a removed one loses it.
func TestManager_Apply(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, false)
	e := newEnv(t, fastOptions)
	e.appendRows(posts("old", 5)...) // before the sync exists: the initial load's job

	st := stateWith(rc.peer())
	e.apply(st)
	e.appendRows(posts("new", 3)...)
	waitFor(t, 5*time.Second, "the new rows", func() bool {
		c, _ := e.cursor()
		return c == 8
	})
	for _, c := range rc.acceptedChanges() {
		if !strings.HasPrefix(c.Key.Value.(string), "new") {
			t.Errorf("sent %v, which was queued before the sync existed", c.Key.Value)
		}
	}
	waitFor(t, 5*time.Second, "the purge", func() bool {
		n, _, _ := e.q.Pending(ctx, "posts", 0, -1)
		return n == 0
	})

	// Disabled: no delivery, the cursor stays, the queue is purged regardless.
	st.Syncs[0].Status = false
	e.apply(st)
	e.appendRows(posts("off", 4)...)
	waitFor(t, 5*time.Second, "the purge past the disabled sync", func() bool {
		n, _, _ := e.q.Pending(ctx, "posts", 0, -1)
		return n == 0
	})
	if c, _ := e.cursor(); c != 8 {
		t.Errorf("disabled sync's cursor = %d, want 8", c)
	}
	if s := e.status(); s.Status || s.Sent != 3 {
		t.Errorf("disabled status = %+v", s)
	}

	// Enabled again after its rows were purged: it starts at the end of the queue.
	st.Syncs[0].Status = true
	e.apply(st)
	e.appendRows(posts("on", 2)...)
	waitFor(t, 5*time.Second, "the rows after re-enabling", func() bool { return rc.changeCount() == 5 })
	for _, c := range rc.acceptedChanges()[3:] {
		if !strings.HasPrefix(c.Key.Value.(string), "on") {
			t.Errorf("sent %v after re-enabling", c.Key.Value)
		}
	}

	// A sync without a peer cannot deliver and says so.
	broken := st
	broken.Peers = nil
	e.apply(broken)
	if s := e.status(); !s.HasErrors || !strings.Contains(deref(s.ErrorMessage), "no peer") {
		t.Errorf("sync without peer: %+v", s)
	}

	// Removed: its cursor goes away.
	e.apply(protocol.State{Revision: 2, Platform: protocol.PlatformRef{ID: self}})
	var n int
	if err := e.state.QueryRow(`SELECT COUNT(*) FROM deliver_cursor`).Scan(&n); err != nil || n != 0 {
		t.Errorf("cursor rows after removal: %d, %v", n, err)
	}
	if st, err := e.m.Status(ctx); err != nil || len(st) != 0 {
		t.Errorf("status after removal: %v, %v", st, err)
	}
	rc.check()
}

// TestSender_Backlog200k delivers a backlog of 200,000 changes: batches stay at 1,000 and
// the heap stays flat, since rows are read in bounded chunks.
func TestSender_Backlog200k(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	const total = 200_000
	rc := newReceiver(t, false)
	rc.keep, rc.light = false, true
	e := newEnv(t, fastOptions)
	e.apply(stateWith(rc.peer()))
	e.stop() // fill the backlog first
	for i := 0; i < total; i += 10_000 {
		e.appendRows(posts("p", 10_000)...)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	start := time.Now()
	e.start(fastOptions)
	e.apply(stateWith(rc.peer()))
	var peak uint64
	deadline := time.Now().Add(3 * time.Minute)
	for rc.changeCount() < total {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d of %d", rc.changeCount(), total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc.check()
	rc.mu.Lock()
	maxBatch := rc.maxBatch
	rc.mu.Unlock()
	if maxBatch != 1000 {
		t.Errorf("largest batch %d, want 1000", maxBatch)
	}
	grew := int64(peak) - int64(base.HeapInuse)
	d := time.Since(start)
	t.Logf("delivered %d changes in %v (%.0f/s); heap in use: %d MiB before, peak %d MiB",
		total, d.Round(time.Millisecond), total/d.Seconds(), base.HeapInuse>>20, peak>>20)
	if grew > 48<<20 {
		t.Errorf("heap grew by %d MiB while delivering the backlog", grew>>20)
	}
}

func TestStatus_PendingAndLag(t *testing.T) {
	rc := newReceiver(t, false)
	hold := make(chan struct{})
	rc.respond = func(r request, attempt int) (int, http.Header, string) {
		<-hold
		return http.StatusAccepted, nil, ""
	}
	e := newEnv(t, fastOptions)
	e.apply(stateWith(rc.peer()))
	e.appendRows(append(posts("a", 4), row{ulid: "echo", origin: target})...)
	time.Sleep(30 * time.Millisecond)
	st := e.status()
	if st.Pending != 4 || st.LagMS < 20 || st.Sent != 0 {
		t.Errorf("status while in flight = %+v", st)
	}
	close(hold)
	waitFor(t, 5*time.Second, "nothing pending", func() bool {
		st := e.status()
		return st.Pending == 0 && st.LagMS == 0 && st.Sent == 4
	})
	rc.check()
}

func deliverConfig(fields ...string) deliver.Config {
	return deliver.Config{UniqueIdentifierFields: fields}
}

// TestSender_MaxBatchBytes closes batches early when their body grows past the limit.
func TestSender_MaxBatchBytes(t *testing.T) {
	rc := newReceiver(t, false)
	opts := fastOptions
	opts.MaxBatchBytes = 2000 // about four changes
	e := newEnv(t, opts)
	e.apply(stateWith(rc.peer()))
	e.appendRows(posts("a", 50)...)
	waitFor(t, 5*time.Second, "all changes", func() bool {
		c, _ := e.cursor()
		return c == 50
	})
	rc.check()
	got := rc.acceptedChanges()
	if len(got) != 50 {
		t.Fatalf("delivered %d changes, want 50", len(got))
	}
	for i, c := range got {
		if c.Seq != int64(i+1) {
			t.Fatalf("change %d has seq %d", i, c.Seq)
		}
	}
	for _, r := range rc.snapshot() {
		if len(r.Body) > 2000+500 || len(r.Batch.Changes) < 2 {
			t.Errorf("batch of %d bytes, %d changes", len(r.Body), len(r.Batch.Changes))
		}
	}
}
