package app

import (
	"context"
	"sync"
	"time"
)

// Event names, mirrored once in frontend/src/api/events.ts.
const (
	// EventSyncPlatformsProgress carries a Progress, throttled (see progressInterval).
	EventSyncPlatformsProgress = "sync-platforms:progress"
	// EventSyncPlatformsDone carries the SyncReport of a finished run.
	EventSyncPlatformsDone = "sync-platforms:done"
	// EventFleetStatus carries []AgentView after every round of the background poller.
	EventFleetStatus = "fleet:status"
)

// Emitter sends an event to the frontend: the Wails runtime on the desktop
// (WailsEmitter), Server-Sent Events in web mode (Broadcaster). Emit must not block.
type Emitter interface {
	Emit(name string, data any)
}

// contextStarter is an Emitter that needs the Wails context handed to App.Startup.
type contextStarter interface {
	start(ctx context.Context)
}

// discardEmitter drops every event.
type discardEmitter struct{}

func (discardEmitter) Emit(string, any) {}

// progressInterval is the least time between two progress events (~10 per second).
const progressInterval = 100 * time.Millisecond

// throttle forwards values to emit at most once per interval. A value arriving too soon
// is kept and sent when the interval has passed, replaced by any later one, so the last
// value is never lost; Flush sends it at once.
type throttle[T any] struct {
	interval time.Duration
	emit     func(T)

	mu      sync.Mutex
	last    time.Time
	pending *T
	timer   *time.Timer
	closed  bool
}

func newThrottle[T any](interval time.Duration, emit func(T)) *throttle[T] {
	return &throttle[T]{interval: interval, emit: emit}
}

// Send emits v now if the interval has passed since the last emission, else later.
func (t *throttle[T]) Send(v T) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	now := time.Now()
	if t.pending == nil && now.Sub(t.last) >= t.interval {
		t.last = now
		t.emit(v)
		return
	}
	t.pending = &v
	if t.timer == nil {
		t.timer = time.AfterFunc(t.interval-now.Sub(t.last), t.fire)
	}
}

func (t *throttle[T]) fire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.timer = nil
	t.flushLocked()
}

func (t *throttle[T]) flushLocked() {
	if t.closed || t.pending == nil {
		return
	}
	v := *t.pending
	t.pending = nil
	t.last = time.Now()
	t.emit(v)
}

// Close emits the pending value, if any, and stops the throttle: later values are dropped.
func (t *throttle[T]) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	t.flushLocked()
	t.closed = true
}
