package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/reconcile"
)

// fakeReconciler answers the target endpoints with a fixed body and records the runs.
type fakeReconciler struct {
	mu     sync.Mutex
	served []string // endpoint and sync id
	runs   []bool   // dry_run of each run
}

func (f *fakeReconciler) ServeReconcile(_ context.Context, s protocol.Sync, endpoint string, _ []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served = append(f.served, endpoint+" "+protocol.FormatID(s.ID))
	return []byte(`{"hashes":[]}`), nil
}

func (f *fakeReconciler) Reconcile(_ context.Context, s protocol.Sync, self int64, dryRun bool, progress func(reconcile.Progress)) (reconcile.Report, error) {
	f.mu.Lock()
	f.runs = append(f.runs, dryRun)
	f.mu.Unlock()
	progress(reconcile.Progress{Done: 2, Total: 2})
	return reconcile.Report{SyncID: s.ID, DryRun: dryRun, RowsCompared: 2, Repaired: 1, Inserted: 1, Errors: []string{}}, nil
}

func TestReconcile_TargetEndpointsAuthorised(t *testing.T) {
	fr := &fakeReconciler{}
	ta := mustStartAgent(t, func(o *agent.Options) { o.Reconciler = fr })
	ta.mustReady()
	post := func(sender int64, key []byte, syncID int64) response {
		body := mustJSON(t, map[string]any{"sync_id": syncID, "key": "ulid", "columns": []string{"ulid"}, "ranges": []any{}})
		req, err := http.NewRequest(http.MethodPost, ta.srv.URL+"/sync-webhook/reconcile/hashes", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		protocol.Signer{}.SignData(protocol.NewULID(), body, key).Set(req.Header)
		req.Header.Set(protocol.HeaderPlatform, protocol.FormatID(sender))
		return ta.do(req)
	}
	if res := post(sourceID, pairKey(sourceID), 7); res.Status != http.StatusOK || string(res.Body) != `{"hashes":[]}` {
		t.Fatalf("signed by the source = %d %s", res.Status, res.Body)
	}
	if res := post(sourceID, pairKey(sourceID), 8); res.Status != http.StatusForbidden {
		t.Fatalf("not the sync's source = %d %s", res.Status, res.Body)
	}
	if res := post(sourceID, pairKey(sourceID), 99); res.Status != http.StatusForbidden {
		t.Fatalf("unknown sync = %d %s", res.Status, res.Body)
	}
	if res := post(sourceID, []byte("wrong key"), 7); res.Status != http.StatusUnauthorized {
		t.Fatalf("bad signature = %d %s", res.Status, res.Body)
	}
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if len(fr.served) != 1 || fr.served[0] != "/reconcile/hashes 7" {
		t.Fatalf("served %v", fr.served)
	}
}

func TestReconcile_RunsAndHistory(t *testing.T) {
	fr := &fakeReconciler{}
	ta := mustStartAgent(t, func(o *agent.Options) { o.Reconciler = fr })
	ta.enroll()
	st := testState(1)
	st.Syncs = append(st.Syncs, protocol.Sync{ID: 9, Status: true, Title: "out", SourcePlatformID: selfID,
		SourceModel: "posts", TargetPlatformID: otherID, TargetModel: "posts", IfExists: "update",
		SyncAllFields: true, Interval: 60})
	ta.putState(st)

	if res := ta.control(http.MethodPost, "/api/syncs/7/reconcile", nil); res.Status != http.StatusBadRequest {
		t.Fatalf("reconcile a sync sourced elsewhere = %d %s", res.Status, res.Body)
	}
	res := ta.control(http.MethodPost, "/api/syncs/9/reconcile?dry_run=true", nil)
	var started protocol.ReconcileStarted
	if res.Status != http.StatusAccepted {
		t.Fatalf("reconcile = %d %s", res.Status, res.Body)
	}
	res.json(t, &started)
	var runs agent.ReconcileRuns
	waitFor(t, "the run ends", func() bool {
		ta.control(http.MethodGet, "/api/syncs/9/reconcile", nil).json(t, &runs)
		return len(runs.Runs) == 1 && runs.Runs[0].State != "running"
	})
	r := runs.Runs[0]
	if r.RunID != started.RunID || r.State != "done" || r.Trigger != "manual" || !r.DryRun || r.Repaired != 1 ||
		r.Progress.Total != 2 {
		t.Fatalf("run %+v", r)
	}
	var status struct {
		Syncs []struct {
			ID        int64               `json:"id"`
			Role      string              `json:"role"`
			Reconcile *agent.ReconcileRun `json:"reconcile"`
		} `json:"syncs"`
	}
	raw := ta.control(http.MethodGet, "/api/status", nil).Body
	if err := json.Unmarshal(raw, &status); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range status.Syncs {
		if s.ID == 9 && s.Role == "source" {
			found = s.Reconcile != nil && s.Reconcile.RunID == started.RunID
		}
	}
	if !found {
		t.Fatalf("status has no last run of sync 9: %s", raw)
	}

	// The history is in the agent's state: it survives a restart.
	ta.restart()
	runs = agent.ReconcileRuns{}
	ta.control(http.MethodGet, "/api/syncs/9/reconcile", nil).json(t, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].RunID != started.RunID || runs.Runs[0].State != "done" || runs.Runs[0].Repaired != 1 {
		t.Fatalf("runs after a restart: %+v", runs.Runs)
	}
}
