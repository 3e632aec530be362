package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/deliver"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/reconcile"
)

// Reconciler compares and repairs a sync's target against its source (source.Source, or a
// fake in tests).
type Reconciler interface {
	// ServeReconcile answers a data-plane reconcile request (endpoint: reconcile.EndpointHashes,
	// …) for sync s, whose target is this platform. The caller verified and authorised it.
	ServeReconcile(ctx context.Context, s protocol.Sync, endpoint string, body []byte) ([]byte, error)
	// Reconcile runs one reconciliation of sync s, whose source is self.
	Reconcile(ctx context.Context, s protocol.Sync, self int64, dryRun bool, progress func(reconcile.Progress)) (reconcile.Report, error)
}

// ReconcileRun is one reconciliation of a sync as GET /api/syncs/{id}/reconcile lists it:
// the report of the run (counts so far while it runs) with its id, trigger and progress.
type ReconcileRun struct {
	RunID string `json:"run_id"`
	// Trigger: "manual" (POST /api/syncs/{id}/reconcile), "initial" (a new or re-enabled
	// sync: the initial load) or "interval" (SYNC_BACKUP_JOB_ENABLED).
	Trigger string `json:"trigger"`
	// State: running, done or failed.
	State    string             `json:"state"`
	Progress reconcile.Progress `json:"progress"`
	reconcile.Report
}

// ReconcileRuns is the body of GET /api/syncs/{id}/reconcile: the sync's runs, newest first.
type ReconcileRuns struct {
	Runs []ReconcileRun `json:"runs"`
}

// runsKept is how many runs of a sync the history keeps (in memory and in the state).
const runsKept = state.ReconcileRunsKept

// initialRetry is how long an initial load waits for the sync's sender to start.
const initialRetry = 30 * time.Second

// runs is the reconciliation history and scheduler of the agent.
type runs struct {
	mu      sync.Mutex
	bySync  map[int64][]*ReconcileRun // newest last
	running map[int64]bool
	enabled map[int64]bool // enabled syncs from this platform, as of the last state
	last    map[int64]time.Time
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

func newRuns() *runs {
	ctx, cancel := context.WithCancel(context.Background())
	return &runs{bySync: map[int64][]*ReconcileRun{}, running: map[int64]bool{}, enabled: map[int64]bool{},
		last: map[int64]time.Time{}, ctx: ctx, cancel: cancel}
}

// start notes the syncs in force (they are not new) and starts the interval scheduler.
func (rs *runs) start(a *Agent) {
	stored, err := a.store.ReconcileRuns(context.Background())
	if err != nil {
		a.log.Warn("reconciliation history not read", "err", err)
	}
	rs.mu.Lock()
	for id, bodies := range stored {
		for _, b := range bodies {
			var r ReconcileRun
			if err := json.Unmarshal(b, &r); err == nil {
				rs.bySync[id] = append(rs.bySync[id], &r)
			}
		}
	}
	rs.started = true
	rs.enabled = a.sourceSyncs()
	now := a.opts.Now()
	for id := range rs.enabled {
		rs.last[id] = now
	}
	rs.mu.Unlock()
	if a.opts.Reconciler == nil || !a.opts.BackupJob {
		return
	}
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-rs.ctx.Done():
				return
			case <-t.C:
				rs.tick(a)
			}
		}
	}()
}

// tick starts the runs whose interval is over.
func (rs *runs) tick(a *Agent) {
	now := a.opts.Now()
	for _, s := range a.current().Syncs {
		if !s.Status || s.SourcePlatformID != a.selfID() {
			continue
		}
		every := time.Duration(max(s.Interval, 1)) * time.Minute
		rs.mu.Lock()
		due := !rs.running[s.ID] && now.Sub(rs.last[s.ID]) >= every
		rs.mu.Unlock()
		if due {
			_, _ = rs.launch(a, s, false, "interval")
		}
	}
}

func (rs *runs) stop() {
	rs.cancel()
	rs.wg.Wait()
}

// sourceSyncs returns the enabled syncs whose source is this platform.
func (a *Agent) sourceSyncs() map[int64]bool {
	out := map[int64]bool{}
	self := a.selfID()
	for _, s := range a.current().Syncs {
		if s.Status && s.SourcePlatformID == self && self != 0 {
			out[s.ID] = true
		}
	}
	return out
}

// stateChanged starts the initial load of every sync from this platform that is new or
// enabled again, unless the initial load is switched off (SYNC_INITIAL_LOAD_ENABLED=false);
// then it is started by hand (POST /api/syncs/{id}/reconcile).
func (rs *runs) stateChanged(a *Agent) {
	rs.mu.Lock()
	if !rs.started {
		rs.mu.Unlock()
		return
	}
	now := a.sourceSyncs()
	var fresh []int64
	for id := range now {
		if !rs.enabled[id] {
			fresh = append(fresh, id)
		}
	}
	rs.enabled = now
	rs.mu.Unlock()
	if a.opts.Reconciler == nil || !a.opts.InitialLoad {
		return
	}
	for _, id := range fresh {
		if s, ok := a.findSync(id); ok {
			if _, err := rs.launch(a, s, false, "initial"); err != nil {
				a.log.Warn("initial load not started", "sync_id", id, "err", err)
			}
		}
	}
}

// launch starts a run of s in the background and returns its id; a sync runs one
// reconciliation at a time (409 conflict).
func (rs *runs) launch(a *Agent, s protocol.Sync, dryRun bool, trigger string) (string, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.running[s.ID] {
		return "", protocol.Errorf(protocol.CodeConflict, "sync %d is being reconciled already", s.ID)
	}
	run := &ReconcileRun{RunID: protocol.NewULID(), Trigger: trigger, State: "running",
		Report: reconcile.Report{SyncID: s.ID, DryRun: dryRun, Start: a.opts.Now().UTC(), Errors: []string{}}}
	rs.running[s.ID] = true
	list := append(rs.bySync[s.ID], run)
	if len(list) > runsKept {
		list = list[len(list)-runsKept:]
	}
	rs.bySync[s.ID] = list
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		rep, err := rs.execute(a, s, dryRun, trigger, run)
		rs.mu.Lock()
		defer rs.mu.Unlock()
		rs.running[s.ID] = false
		rs.last[s.ID] = a.opts.Now()
		p := run.Progress
		run.Report = rep
		run.Progress = p
		if run.Report.Errors == nil {
			run.Report.Errors = []string{}
		}
		run.State = "done"
		if err != nil {
			run.State = "failed"
		}
		if body, jerr := json.Marshal(run); jerr == nil {
			if serr := a.store.SaveReconcileRun(context.Background(), s.ID, run.RunID, run.Start, body); serr != nil {
				a.log.Warn("reconciliation run not saved", "sync_id", s.ID, "run_id", run.RunID, "err", serr)
			}
		}
		if err != nil {
			run.State = "failed"
			a.log.Warn("reconciliation failed", "sync_id", s.ID, "run_id", run.RunID, "trigger", trigger, "err", err)
		} else {
			a.log.Info("reconciliation done", "sync_id", s.ID, "run_id", run.RunID, "trigger", trigger,
				"dry_run", dryRun, "compared", rep.RowsCompared, "repaired", rep.Repaired, "deleted", rep.Deleted,
				"bytes", rep.Bytes)
		}
	}()
	return run.RunID, nil
}

// execute runs the reconciliation, retrying while the sync's sender is not running yet
// (a new sync's sender starts with the state that brought it).
func (rs *runs) execute(a *Agent, s protocol.Sync, dryRun bool, trigger string, run *ReconcileRun) (reconcile.Report, error) {
	progress := func(p reconcile.Progress) {
		rs.mu.Lock()
		run.Progress = p
		rs.mu.Unlock()
	}
	deadline := time.Now().Add(initialRetry)
	for {
		rep, err := a.opts.Reconciler.Reconcile(rs.ctx, s, a.selfID(), dryRun, progress)
		if err == nil || rs.ctx.Err() != nil || time.Now().After(deadline) || !retryable(err, trigger) {
			if rep.Start.IsZero() {
				rep.Start = run.Start
			}
			if rep.End.IsZero() {
				rep.End = a.opts.Now().UTC()
			}
			return rep, err
		}
		select {
		case <-rs.ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// retryable: the sync's sender is not running yet; for an initial load also any other
// failure (the target may not have the new state yet).
func retryable(err error, trigger string) bool {
	return trigger == "initial" || errors.Is(err, deliver.ErrNotRunning)
}

// list returns copies of a sync's runs, newest first.
func (rs *runs) list(syncID int64) []ReconcileRun {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	src := rs.bySync[syncID]
	out := make([]ReconcileRun, 0, len(src))
	for i := len(src) - 1; i >= 0; i-- {
		r := *src[i]
		r.Errors = append([]string{}, r.Errors...)
		out = append(out, r)
	}
	return out
}

// lastRun returns a copy of the sync's newest run.
func (rs *runs) lastRun(syncID int64) *ReconcileRun {
	l := rs.list(syncID)
	if len(l) == 0 {
		return nil
	}
	return &l[0]
}

// startReconcile answers POST /api/syncs/{id}/reconcile[?dry_run=true].
func (a *Agent) startReconcile(w http.ResponseWriter, r *http.Request, _ []byte) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	s, ok := a.findSync(id)
	switch {
	case !ok:
		return protocol.Errorf(protocol.CodeNotFound, "sync %d does not exist", id)
	case s.SourcePlatformID != a.selfID():
		return protocol.Errorf(protocol.CodeBadRequest, "this platform is not the source of sync %d", id)
	case !s.Status:
		return protocol.Errorf(protocol.CodeBadRequest, "sync %d is disabled", id)
	case a.opts.Reconciler == nil:
		return protocol.Errorf(protocol.CodeNotFound, "reconciliation is not available on this agent")
	}
	dry := false
	if v := r.URL.Query().Get("dry_run"); v != "" {
		if dry, err = strconv.ParseBool(v); err != nil {
			return protocol.Errorf(protocol.CodeBadRequest, "dry_run must be true or false")
		}
	}
	runID, err := a.runs.launch(a, s, dry, "manual")
	if err != nil {
		return err
	}
	protocol.WriteJSON(w, http.StatusAccepted, protocol.ReconcileStarted{RunID: runID})
	return nil
}

// reconcileRuns answers GET /api/syncs/{id}/reconcile.
func (a *Agent) reconcileRuns(w http.ResponseWriter, r *http.Request, _ []byte) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if _, ok := a.findSync(id); !ok {
		return protocol.Errorf(protocol.CodeNotFound, "sync %d does not exist", id)
	}
	protocol.WriteJSON(w, http.StatusOK, ReconcileRuns{Runs: a.runs.list(id)})
	return nil
}

// reconcileData answers POST {webhook_path}/reconcile/{endpoint}: a data-plane request of
// the source of a sync targeting this platform, signed with K_pair(sender->self) and
// authorised like a delivery.
func (a *Agent) reconcileData(w http.ResponseWriter, r *http.Request, body []byte) error {
	if a.opts.WebhookDisabled || a.opts.Reconciler == nil {
		return protocol.Errorf(protocol.CodeNotFound, "no such endpoint")
	}
	self, sender, _, err := a.verifyDataPlane(r, body)
	if err != nil {
		return err
	}
	var head struct {
		SyncID int64 `json:"sync_id"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "request body: %v", err)
	}
	s, ok := a.findSync(head.SyncID)
	forbidden := func(format string, args ...any) error {
		return protocol.Errorf(protocol.CodeUnauthorized, format, args...).WithStatus(http.StatusForbidden)
	}
	switch {
	case !ok:
		return forbidden("sync %d does not exist on this platform", head.SyncID)
	case !s.Status:
		return forbidden("sync %d is disabled", head.SyncID)
	case s.SourcePlatformID != sender:
		return forbidden("platform %d is not the source of sync %d", sender, head.SyncID)
	case s.TargetPlatformID != self:
		return forbidden("this platform is not the target of sync %d", head.SyncID)
	}
	out, err := a.opts.Reconciler.ServeReconcile(r.Context(), s, "/reconcile/"+r.PathValue("endpoint"), body)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(out)
	return err
}
