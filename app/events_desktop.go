//go:build !web

package app

import (
	"context"
	"sync"

	"github.com/wailsapp/wails/v2/pkg/runtime"
)

// WailsEmitter emits events through the Wails runtime of the desktop window. Events
// emitted before App.Startup handed it the window's context are dropped.
type WailsEmitter struct {
	mu  sync.RWMutex
	ctx context.Context
}

var _ Emitter = (*WailsEmitter)(nil)

// NewWailsEmitter returns an emitter for the desktop window.
func NewWailsEmitter() *WailsEmitter { return &WailsEmitter{} }

func (e *WailsEmitter) start(ctx context.Context) {
	e.mu.Lock()
	e.ctx = ctx
	e.mu.Unlock()
}

// Emit calls runtime.EventsEmit.
func (e *WailsEmitter) Emit(name string, data any) {
	e.mu.RLock()
	ctx := e.ctx
	e.mu.RUnlock()
	if ctx != nil {
		runtime.EventsEmit(ctx, name, data)
	}
}
