// Package app is the Wails adapter of the control center: it builds the bound services,
// forwards the Wails lifecycle to them and maps errors. It holds no business logic; that
// lives under backend/.
package app

import (
	"context"
	"sync"
)

// Options configures the control center.
type Options struct {
	// CatalogPath overrides the catalog file (default: the user's config directory).
	CatalogPath string
}

// App owns the control center's services for the lifetime of the window.
type App struct {
	opts Options

	mu  sync.Mutex
	ctx context.Context
}

// New builds the control center from its options.
func New(opts Options) (*App, error) {
	return &App{opts: opts}, nil
}

// Startup is called by Wails when the window is ready.
func (a *App) Startup(ctx context.Context) {
	a.mu.Lock()
	a.ctx = ctx
	a.mu.Unlock()
}

// Shutdown is called by Wails when the window closes.
func (a *App) Shutdown(context.Context) {}

// Bindings lists the services bound to the frontend.
func (a *App) Bindings() []any {
	return []any{}
}
