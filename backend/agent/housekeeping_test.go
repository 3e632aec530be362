package agent_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

func TestInboxPruning(t *testing.T) {
	clk := newFakeClock()
	ta := mustStartAgent(t, func(o *agent.Options) {
		o.Now = clk.Now
		o.InboxRetention = 7 * 24 * time.Hour
	})
	ta.applier.ApplyBatchFunc = func(ctx context.Context, s protocol.Sync, b *protocol.Batch) (agent.ApplyResult, error) {
		if b.BatchID == "dead" {
			return agent.ApplyResult{}, errors.New("broken")
		}
		return agent.ApplyResult{}, nil
	}
	ta.mustReady()
	deliver := func(b protocol.Batch) response {
		t.Helper()
		body := mustJSON(t, b)
		h := protocol.Signer{Now: clk.Now}.SignData(b.BatchID, body, pairKey(b.SourcePlatformID))
		return ta.deliverRaw(protocol.FormatID(b.SourcePlatformID), h, body)
	}
	lookup := func(id string) (state.Batch, error) { return ta.store.LookupBatch(context.Background(), id) }

	for _, b := range []protocol.Batch{testBatch("old", 7, sourceID, 1), testBatch("dead", 8, otherID, 1)} {
		if res := deliver(b); res.Status != http.StatusAccepted {
			t.Fatalf("deliver %s = %d %s", b.BatchID, res.Status, res.Body)
		}
	}
	waitFor(t, "old applied, dead given up on", func() bool {
		o, _ := lookup("old")
		d, _ := lookup("dead")
		return o.Status == state.StatusApplied && d.Status == state.StatusDead
	})

	// Within the retention the applied batch stays a duplicate.
	clk.Advance(7*24*time.Hour - time.Minute)
	ta.agent.Housekeep(context.Background())
	if res := deliver(testBatch("old", 7, sourceID, 1)); res.Status != http.StatusOK || !strings.Contains(string(res.Body), "duplicate") {
		t.Fatalf("redelivery within the retention = %d %s", res.Status, res.Body)
	}

	// A pending batch (the platform is locked, so it waits) is never pruned.
	locked := testState(2)
	locked.Platforms[1].Locked = true
	if res := ta.controlWith(protocol.Signer{Now: clk.Now}, http.MethodPut, "/api/state", mustJSON(t, locked), ctlKey()); res.Status != http.StatusOK {
		t.Fatalf("lock = %d %s", res.Status, res.Body)
	}
	if _, _, err := ta.store.AddBatch(context.Background(), state.Batch{BatchID: "waiting", SyncID: 7, SourcePlatformID: sourceID,
		Count: 1, Body: []byte("{}"), ReceivedAt: clk.Now().Add(-30 * 24 * time.Hour), OldestChangeAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}

	// After the retention the applied batch is pruned; the dead and pending ones stay.
	clk.Advance(2 * time.Minute)
	ta.agent.Housekeep(context.Background())
	if _, err := lookup("old"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("applied batch after the retention: %v, want pruned", err)
	}
	if b, err := lookup("dead"); err != nil || b.Status != state.StatusDead {
		t.Fatalf("dead batch = %+v, %v", b, err)
	}
	if d, err := ta.store.DeadLetters(context.Background(), 8); err != nil || len(d) != 1 {
		t.Fatalf("dead letters = %d, %v", len(d), err)
	}
	if b, err := lookup("waiting"); err != nil || b.Status != state.StatusPending {
		t.Fatalf("pending batch = %+v, %v", b, err)
	}
	// Seen control ids keep their own pruning.
	if n, err := ta.store.PruneSeen(context.Background(), clk.Now()); err != nil || n != 0 {
		t.Fatalf("seen ids left after housekeeping: %d, %v", n, err)
	}
}

func TestInboxRetention_Config(t *testing.T) {
	if got := agent.DefaultConfig().InboxRetention; time.Duration(got) != 7*24*time.Hour {
		t.Fatalf("default inbox_retention = %v", time.Duration(got))
	}
	c := agent.DefaultConfig()
	c.DB, c.State = "sqlite:/x.db", "/tmp/x"
	c.InboxRetention = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "inbox_retention") {
		t.Fatalf("zero retention: %v", err)
	}
}

// stalledRequest sends a POST whose body stops after head bytes until release is closed; with
// length >= 0 it declares that Content-Length, otherwise it is chunked.
type stalledRequest struct {
	release chan struct{}
	done    chan response
}

func (ta *testAgent) stalledPost(length int64, head []byte, rest []byte) *stalledRequest {
	pr, pw := io.Pipe()
	s := &stalledRequest{release: make(chan struct{}), done: make(chan response, 1)}
	go func() {
		_, _ = pw.Write(head)
		<-s.release
		_, _ = pw.Write(rest)
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, ta.srv.URL+"/sync-webhook", pr)
	if err != nil {
		ta.t.Fatal(err)
	}
	req.ContentLength = length
	go func() {
		res, err := ta.srv.Client().Do(req)
		if err != nil {
			s.done <- response{Status: -1, Body: []byte(err.Error())}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		s.done <- response{Status: res.StatusCode, Body: b}
	}()
	return s
}

func (s *stalledRequest) finish() response {
	close(s.release)
	return <-s.done
}

func TestBodyMemoryBudget(t *testing.T) {
	const kib = 1 << 10
	ta := mustStartAgent(t, func(o *agent.Options) {
		o.BodyLimit = 1 << 20
		o.BodyMemory = 1 << 20
	})
	ta.mustReady()
	big := func(n int) []byte { return []byte(strings.Repeat("x", n)) }

	// A large declared body holds its size from the budget while it is read.
	first := ta.stalledPost(700*kib, big(10*kib), big(690*kib))
	waitFor(t, "first body reserved", func() bool { return ta.agent.BodyBytesInFlight() == 700*kib })

	// Another large body does not fit: 503 with Retry-After, before it is read.
	req, _ := http.NewRequest(http.MethodPost, ta.srv.URL+"/sync-webhook", strings.NewReader(string(big(600*kib))))
	res, err := ta.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" ||
		(response{Body: body}).errorCode() != protocol.CodeInternal {
		t.Fatalf("second large body = %d (Retry-After %q) %s, want 503 with Retry-After", res.StatusCode,
			res.Header.Get("Retry-After"), body)
	}

	// A chunked body is refused once it grows past what is left.
	chunked := ta.stalledPost(-1, big(400*kib), nil)
	if r := <-chunked.done; r.Status != http.StatusServiceUnavailable {
		t.Fatalf("chunked large body = %d %s, want 503", r.Status, r.Body)
	}
	close(chunked.release)

	// Small requests are not turned away: control requests and small deliveries go on.
	if res := ta.control(http.MethodGet, "/api/status", nil); res.Status != http.StatusOK {
		t.Fatalf("control request while saturated = %d %s", res.Status, res.Body)
	}
	if res := ta.deliver(sourceID, testBatch("small", 7, sourceID, 1)); res.Status != http.StatusAccepted {
		t.Fatalf("small delivery while saturated = %d %s", res.Status, res.Body)
	}

	// Once the first body is done, its reservation is given back.
	if r := first.finish(); r.Status != http.StatusUnauthorized {
		t.Fatalf("first (unsigned) = %d %s, want 401 after reading it", r.Status, r.Body)
	}
	waitFor(t, "budget released", func() bool { return ta.agent.BodyBytesInFlight() == 0 })

	// Now a large signed delivery fits, and a chunked one grows within the budget.
	b := testBatch("large", 7, sourceID, 2)
	b.Changes[0].Data["title"] = strings.Repeat("y", 600*kib)
	if res := ta.deliver(sourceID, b); res.Status != http.StatusAccepted {
		t.Fatalf("large delivery = %d %.200s", res.Status, res.Body)
	}
	chunked = ta.stalledPost(-1, big(300*kib), big(300*kib))
	waitFor(t, "chunked body reserved as it grows", func() bool { return ta.agent.BodyBytesInFlight() >= 256*kib })
	if r := chunked.finish(); r.Status != http.StatusUnauthorized {
		t.Fatalf("chunked within the budget = %d %s, want 401 after reading it", r.Status, r.Body)
	}
	waitFor(t, "budget released", func() bool { return ta.agent.BodyBytesInFlight() == 0 })

	// Over the size limit is still 413, declared or not.
	over := ta.stalledPost(-1, big(1<<20+1), nil)
	if r := <-over.done; r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked over the limit = %d %s, want 413", r.Status, r.Body)
	}
	close(over.release)
	waitFor(t, "budget released", func() bool { return ta.agent.BodyBytesInFlight() == 0 })
}

func TestBodyMemoryBudget_ManyLargeBodies(t *testing.T) {
	// Default budget (64 MiB) with the default 32 MiB limit: two bodies at the limit fit,
	// a third is turned away.
	ta := mustStartAgent(t, nil)
	ta.mustReady()
	var reqs []*stalledRequest
	for i := range 2 {
		reqs = append(reqs, ta.stalledPost(32<<20, []byte("{"), nil))
		want := int64(i+1) * (32 << 20)
		waitFor(t, "reserved", func() bool { return ta.agent.BodyBytesInFlight() == want })
	}
	third := ta.stalledPost(32<<20, []byte("{"), nil)
	if r := <-third.done; r.Status != http.StatusServiceUnavailable {
		t.Fatalf("third body at the limit = %d %s, want 503", r.Status, r.Body)
	}
	close(third.release)
	for _, r := range reqs {
		r.finish() // the declared length is never reached: the client gives up
	}
	waitFor(t, "budget released", func() bool { return ta.agent.BodyBytesInFlight() == 0 })
}
