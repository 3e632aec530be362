package agent

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// idlePoll is how often an idle worker looks at the inbox even when nothing woke it.
const idlePoll = 30 * time.Second

// workers runs one ordered apply worker per sync that this platform is the target of and
// that is enabled (SyncJob). Workers start and stop as syncs appear in and leave the state.
type workers struct {
	a       *Agent
	mu      sync.Mutex
	running map[int64]*worker
	stopped bool
	wg      sync.WaitGroup
}

type worker struct {
	a      *Agent
	syncID int64
	wake   chan struct{}
	stop   chan struct{}
}

func newWorkers(a *Agent) *workers {
	return &workers{a: a, running: make(map[int64]*worker)}
}

// reconcile starts a worker for every enabled sync targeting this platform and stops the
// others; it wakes every running worker, since the sync or the platform may have changed.
func (ws *workers) reconcile() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.stopped {
		return
	}
	self := ws.a.selfID()
	want := make(map[int64]bool)
	for _, s := range ws.a.current().Syncs {
		if s.Status && s.TargetPlatformID == self && self != 0 {
			want[s.ID] = true
		}
	}
	for id, w := range ws.running {
		if !want[id] {
			close(w.stop)
			delete(ws.running, id)
			ws.a.log.Info("apply worker stopping", "sync_id", id)
		}
	}
	for id := range want {
		if w, ok := ws.running[id]; ok {
			w.poke()
			continue
		}
		w := &worker{a: ws.a, syncID: id, wake: make(chan struct{}, 1), stop: make(chan struct{})}
		ws.running[id] = w
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			w.run()
		}()
		ws.a.log.Info("apply worker started", "sync_id", id)
	}
}

// notify wakes the worker of a sync after a batch was stored for it.
func (ws *workers) notify(syncID int64) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w, ok := ws.running[syncID]; ok {
		w.poke()
	}
}

// stopAll stops every worker and waits until each has finished the batch it was applying.
func (ws *workers) stopAll() {
	ws.mu.Lock()
	ws.stopped = true
	for id, w := range ws.running {
		close(w.stop)
		delete(ws.running, id)
	}
	ws.mu.Unlock()
	ws.wg.Wait()
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// wait sleeps until the worker is woken, d passes, or it is stopped (false).
func (w *worker) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.stop:
		return false
	case <-w.wake:
		return true
	case <-t.C:
		return true
	}
}

func (w *worker) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// runnable reports whether the worker may apply now: its sync is in force, enabled and
// targets this platform, and the platform is neither locked nor read-only (such a platform
// takes no writes; the batches wait in the inbox).
func (w *worker) runnable() bool {
	own, ok := w.a.ownPlatform()
	if !ok || own.Locked || own.ReadOnly {
		return false
	}
	s, ok := w.a.findSync(w.syncID)
	return ok && s.Status && s.TargetPlatformID == own.ID
}

func (w *worker) run() {
	ctx := context.Background()
	log := w.a.log.With("sync_id", w.syncID)
	storeFailures := 0
	for !w.stopping() {
		if !w.runnable() {
			if !w.wait(idlePoll) {
				return
			}
			continue
		}
		b, err := w.a.store.NextBatch(ctx, w.syncID)
		if errors.Is(err, state.ErrNotFound) {
			if !w.wait(idlePoll) {
				return
			}
			continue
		}
		if err != nil {
			storeFailures++
			log.Error("read inbox", "err", err)
			if !w.wait(w.a.backoff(storeFailures)) {
				return
			}
			continue
		}
		if !w.process(ctx, b, log) {
			storeFailures++
			if !w.wait(w.a.backoff(storeFailures)) {
				return
			}
			continue
		}
		storeFailures = 0
	}
}

// process applies one batch with retries, then records it as applied or moves it to the
// dead letters. It returns false when recording failed; the batch is then found again, and
// the application database's marker makes its next apply a no-op. A stop request is honoured
// between attempts, never during one.
func (w *worker) process(ctx context.Context, b state.Batch, log *slog.Logger) bool {
	started := w.a.opts.Now()
	batch := w.a.decoded.take(b.BatchID)
	if batch == nil {
		var err error
		if batch, err = protocol.DecodeBatch(b.Body); err != nil {
			b.Attempts++
			return w.deadLetter(ctx, b, "stored body does not decode: "+err.Error(), started, log)
		}
	}
	for {
		if !w.runnable() {
			return true // the state changed since; run waits until the worker may go on
		}
		sync, _ := w.a.findSync(w.syncID)
		res, err := w.a.opts.Applier.ApplyBatch(ctx, sync, batch)
		if err == nil {
			err = w.a.store.MarkApplied(ctx, state.Applied{Batch: b, AlreadyApplied: res.AlreadyApplied,
				StartedAt: started, FinishedAt: w.a.opts.Now()})
			if err != nil {
				log.Error("record applied batch", "batch_id", b.BatchID, "err", err)
				return false
			}
			log.Info("batch applied", "batch_id", b.BatchID, "count", b.Count, "already_applied", res.AlreadyApplied)
			return true
		}
		b.Attempts++
		reason := protocol.AsError(err).Message
		if protocol.CodeOf(err) == protocol.CodeInternal {
			reason = err.Error()
		}
		if b.Attempts >= w.a.opts.Retry.MaxAttempts {
			return w.deadLetter(ctx, b, reason, started, log)
		}
		if err := w.a.store.RecordFailure(ctx, b.BatchID, b.Attempts, reason); err != nil {
			log.Error("record apply failure", "batch_id", b.BatchID, "err", err)
		}
		delay := w.a.backoff(b.Attempts)
		log.Warn("apply failed, will retry", "batch_id", b.BatchID, "attempt", b.Attempts,
			"max_attempts", w.a.opts.Retry.MaxAttempts, "retry_in", delay.String(), "err", reason)
		t := time.NewTimer(delay)
		select {
		case <-w.stop:
			t.Stop()
			return true
		case <-t.C:
		}
	}
}

func (w *worker) deadLetter(ctx context.Context, b state.Batch, reason string, started time.Time, log *slog.Logger) bool {
	if err := w.a.store.MoveToDeadLetters(ctx, b, reason, started, w.a.opts.Now()); err != nil {
		log.Error("move batch to dead letters", "batch_id", b.BatchID, "err", err)
		return false
	}
	log.Error("batch moved to dead letters", "batch_id", b.BatchID, "attempts", b.Attempts, "reason", reason)
	return true
}

// backoff is the wait before attempt n+1: Backoff doubled n-1 times, at most MaxBackoff,
// with up to 20% of jitter.
func (a *Agent) backoff(n int) time.Duration {
	d := a.opts.Retry.Backoff
	for i := 1; i < n && d < a.opts.Retry.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, a.opts.Retry.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}
