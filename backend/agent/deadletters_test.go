package agent_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

type deadLettersBody struct {
	DeadLetters []struct {
		BatchID  string `json:"batch_id"`
		Reason   string `json:"reason"`
		FailedAt string `json:"failed_at"`
		Count    int    `json:"count"`
	} `json:"dead_letters"`
}

type requeuedBody struct {
	Status   string   `json:"status"`
	BatchIDs []string `json:"batch_ids"`
}

func TestDeadLetters_ListAndRetry(t *testing.T) {
	ta := mustStartAgent(t, nil)
	var failing atomic.Bool
	failing.Store(true)
	gate := make(chan struct{})
	close(gate)
	var gateMu sync.Mutex
	ta.applier.ApplyBatchFunc = func(ctx context.Context, s protocol.Sync, b *protocol.Batch) (agent.ApplyResult, error) {
		if b.BatchID == "ok" {
			return agent.ApplyResult{}, nil
		}
		if failing.Load() {
			return agent.ApplyResult{}, protocol.Errorf(protocol.CodeConflict, "row %s exists (if_exists: error)", b.BatchID)
		}
		gateMu.Lock()
		g := gate
		gateMu.Unlock()
		<-g
		return agent.ApplyResult{}, nil
	}
	ta.mustReady()

	// Two batches fail (arriving out of seq order), one in between succeeds.
	for _, b := range []protocol.Batch{
		testBatch("bad-late", 7, sourceID, 5, 6),
		testBatch("bad-early", 7, sourceID, 1),
		testBatch("ok", 7, sourceID, 9),
	} {
		if res := ta.deliver(sourceID, b); res.Status != http.StatusAccepted {
			t.Fatalf("deliver %s = %d %s", b.BatchID, res.Status, res.Body)
		}
	}
	waitFor(t, "two dead letters", func() bool {
		d, _ := ta.store.DeadLetters(context.Background(), 7)
		return len(d) == 2 && len(ta.applier.Applied()) == 1
	})

	res := ta.control(http.MethodGet, "/api/syncs/7/dead-letters", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("list = %d %s", res.Status, res.Body)
	}
	var list deadLettersBody
	res.json(t, &list)
	if len(list.DeadLetters) != 2 {
		t.Fatalf("list = %s", res.Body)
	}
	byID := map[string]int{}
	for _, d := range list.DeadLetters {
		byID[d.BatchID] = d.Count
		if _, err := time.Parse(time.RFC3339, d.FailedAt); err != nil || d.Reason != "row "+d.BatchID+" exists (if_exists: error)" {
			t.Fatalf("entry %+v (failed_at: %v)", d, err)
		}
	}
	if byID["bad-early"] != 1 || byID["bad-late"] != 2 {
		t.Fatalf("counts = %v", byID)
	}
	if st := ta.syncStatus(7); !st.HasErrors || st.Failed != 3 {
		t.Fatalf("status with dead letters = %+v", st)
	}

	// Retry: the applier now works, but holds the first batch until released.
	failing.Store(false)
	gateMu.Lock()
	gate = make(chan struct{})
	release := gate
	gateMu.Unlock()
	res = ta.control(http.MethodPost, "/api/syncs/7/dead-letters/retry", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("retry = %d %s", res.Status, res.Body)
	}
	var rq requeuedBody
	res.json(t, &rq)
	if rq.Status != "requeued" || !slices.Equal(rq.BatchIDs, []string{"bad-early", "bad-late"}) {
		t.Fatalf("retry answer = %s, want both in seq order", res.Body)
	}
	// Until they are applied the sync still reports its error.
	st := ta.syncStatus(7)
	if !st.HasErrors || st.ErrorMessage == nil || st.Pending != 3 || st.Failed != 0 {
		t.Fatalf("status while the retried batches wait = %+v", st)
	}
	var empty deadLettersBody
	ta.control(http.MethodGet, "/api/syncs/7/dead-letters", nil).json(t, &empty)
	if empty.DeadLetters == nil || len(empty.DeadLetters) != 0 {
		t.Fatalf("dead letters after the retry = %+v, want []", empty)
	}
	close(release)
	waitFor(t, "retried batches applied", func() bool { return len(ta.applier.Applied()) == 3 })
	if got := ta.applier.Applied(); !slices.Equal(got, []string{"ok", "bad-early", "bad-late"}) {
		t.Fatalf("applied %v", got)
	}
	waitFor(t, "errors cleared", func() bool {
		st := ta.syncStatus(7)
		return !st.HasErrors && st.ErrorMessage == nil && st.Pending == 0 && st.Applied == 4 && st.Failed == 0
	})

	// The batch ids stay duplicates.
	if res := ta.deliver(sourceID, testBatch("bad-early", 7, sourceID, 1)); res.Status != http.StatusOK {
		t.Fatalf("redelivery of a retried batch = %d %s", res.Status, res.Body)
	}

	t.Run("nothing to retry", func(t *testing.T) {
		res := ta.control(http.MethodPost, "/api/syncs/7/dead-letters/retry", "{}")
		if got, want := string(res.Body), `{"status":"requeued","batch_ids":[]}`+"\n"; res.Status != http.StatusOK || got != want {
			t.Fatalf("= %d %s, want 200 %s", res.Status, got, want)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		for _, c := range []struct {
			method, uri string
			body        any
			status      int
			code        protocol.Code
		}{
			{http.MethodGet, "/api/syncs/99/dead-letters", nil, 404, protocol.CodeNotFound},
			{http.MethodPost, "/api/syncs/99/dead-letters/retry", nil, 404, protocol.CodeNotFound},
			{http.MethodGet, "/api/syncs/x/dead-letters", nil, 404, protocol.CodeNotFound},
			{http.MethodPost, "/api/syncs/7/dead-letters/retry", `{"batch_ids":["x"]}`, 400, protocol.CodeBadRequest},
			{http.MethodPost, "/api/syncs/7/dead-letters", nil, 405, protocol.CodeBadRequest},
			{http.MethodGet, "/api/syncs/7/dead-letters/retry", nil, 405, protocol.CodeBadRequest},
		} {
			res := ta.control(c.method, c.uri, c.body)
			if res.Status != c.status || res.errorCode() != c.code {
				t.Errorf("%s %s = %d %s, want %d %s", c.method, c.uri, res.Status, res.Body, c.status, c.code)
			}
		}
		res := ta.controlWith(protocol.Signer{}, http.MethodGet, "/api/syncs/7/dead-letters", nil, bootKey())
		if res.Status != http.StatusUnauthorized {
			t.Errorf("list signed with K_boot = %d %s, want 401", res.Status, res.Body)
		}
	})
}

func TestDeadLetters_RetriedBatchCanDieAgain(t *testing.T) {
	ta := mustStartAgent(t, nil)
	ta.applier.ApplyBatchFunc = func(ctx context.Context, s protocol.Sync, b *protocol.Batch) (agent.ApplyResult, error) {
		return agent.ApplyResult{}, errors.New("still broken")
	}
	ta.mustReady()
	ta.deliver(sourceID, testBatch("bad", 7, sourceID, 1))
	dead := func() []state.DeadLetter {
		d, err := ta.store.DeadLetters(context.Background(), 7)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	waitFor(t, "dead letter", func() bool { return len(dead()) == 1 })
	body := dead()[0].Body
	res := ta.control(http.MethodPost, "/api/syncs/7/dead-letters/retry", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("retry = %d %s", res.Status, res.Body)
	}
	waitFor(t, "dead again", func() bool { return len(dead()) == 1 })
	d := dead()[0]
	if d.Attempts != 3 || string(d.Body) != string(body) || d.Reason != "still broken" {
		t.Fatalf("dead again = attempts %d, reason %q, same body %v", d.Attempts, d.Reason, string(d.Body) == string(body))
	}
	if st := ta.syncStatus(7); !st.HasErrors || st.Failed != 1 {
		t.Fatalf("status = %+v", st)
	}
}
