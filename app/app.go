// Package app is the Wails adapter of the control center: it builds the bound services
// with their dependencies, forwards the Wails lifecycle to them, maps errors to the
// frontend's JSON error shape and sends events. The same services are served over HTTP in
// web mode (WebServer), so the desktop and the browser can never drift apart. Business
// logic lives under backend/.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// Secret store kinds, as Settings.secrets_backend names them.
const (
	BackendKeyring = "keyring"
	BackendFile    = "file"
)

// Options configure the control center. The zero value is the desktop's defaults.
type Options struct {
	// CatalogPath is the catalog file (default catalog.DefaultPath()).
	CatalogPath string
	// SettingsPath is the preferences file (default DefaultSettingsPath()).
	SettingsPath string
	// Secrets keeps the tokens (default secrets.NewKeyring()).
	Secrets secrets.Store
	// SecretsBackend says what Secrets is: BackendKeyring (default) or BackendFile, whose
	// clear-text file SecretsFile names in the settings' warning.
	SecretsBackend string
	SecretsFile    string
	// Emitter sends events to the frontend (default: dropped).
	Emitter Emitter
	// Logger receives the control center's logs (default: text on stderr at LogLevel).
	// LogLevel is set from the settings' log_level at start and on every change.
	Logger   *slog.Logger
	LogLevel *slog.LevelVar
	// Client is the template of every agent client (timeouts, retries, signer).
	Client fleet.ClientOptions
	// TrustOnFirstUse lets Sync Platforms pin the certificate an https agent presents when
	// none is pinned yet; without it such an agent fails until an admin accepts the
	// fingerprint Probe shows.
	TrustOnFirstUse bool
	// PollInterval is the time between two rounds of the background poller (default
	// fleet.DefaultPollInterval); a negative value disables the poller.
	PollInterval time.Duration
	// Resolver answers the domain look-ups of LookupIP (default net.DefaultResolver).
	Resolver fleet.Resolver
	// Now is the clock of the catalog (default time.Now).
	Now func() time.Time
}

// App owns the control center's services from New to Shutdown.
type App struct {
	log      *slog.Logger
	level    *slog.LevelVar
	catalog  *catalog.Store
	syncer   *fleet.Syncer
	poller   *fleet.Poller
	emitter  Emitter
	settings *settingsStore

	// ctx lives until Shutdown; bound calls run under it.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	pollCancel context.CancelFunc
	pollDone   chan struct{}
	closed     bool

	// The bound services, in the order Bindings lists them.
	Platforms *PlatformService
	Syncs     *SyncService
	Fleet     *FleetService
	Activity  *ActivityService
	Settings  *SettingsService
}

// New opens the catalog and builds every service from its options.
func New(opts Options) (*App, error) {
	level := opts.LogLevel
	if level == nil {
		level = new(slog.LevelVar)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	if opts.CatalogPath == "" {
		p, err := catalog.DefaultPath()
		if err != nil {
			return nil, err
		}
		opts.CatalogPath = p
	}
	if opts.SettingsPath == "" {
		p, err := DefaultSettingsPath()
		if err != nil {
			return nil, err
		}
		opts.SettingsPath = p
	}
	if opts.Secrets == nil {
		opts.Secrets = secrets.NewKeyring()
	}
	switch opts.SecretsBackend {
	case "":
		opts.SecretsBackend = BackendKeyring
	case BackendKeyring, BackendFile:
	default:
		return nil, fmt.Errorf("secrets backend %q: want %q or %q", opts.SecretsBackend, BackendKeyring, BackendFile)
	}
	if opts.Emitter == nil {
		opts.Emitter = discardEmitter{}
	}

	settings := &settingsStore{path: opts.SettingsPath}
	prefs, err := settings.load()
	if err != nil {
		log.Warn("read settings", "err", err)
	}
	level.Set(parseLevel(prefs.LogLevel))

	cat, err := catalog.Open(opts.CatalogPath)
	if err != nil {
		return nil, err
	}
	if opts.Now != nil {
		cat.Now = opts.Now
	}
	adapter := fleetCatalog{cat}
	syncer := fleet.NewSyncer(adapter, opts.Secrets, fleet.SyncerOptions{
		TrustOnFirstUse: opts.TrustOnFirstUse, Client: opts.Client, Logger: log,
	})
	ctx, cancel := context.WithCancel(context.Background())
	a := &App{
		log: log, level: level, catalog: cat, syncer: syncer, emitter: opts.Emitter, settings: settings,
		ctx: ctx, cancel: cancel,
	}
	a.Platforms = &PlatformService{
		ctx: ctx, log: log, catalog: cat, secrets: opts.Secrets, syncer: syncer,
		lookup: fleet.IPLookup{Resolver: opts.Resolver},
	}
	a.Syncs = &SyncService{ctx: ctx, log: log, catalog: cat, secrets: opts.Secrets, client: opts.Client}
	a.Fleet = &FleetService{ctx: ctx, log: log, catalog: cat, syncer: syncer, emitter: opts.Emitter,
		lastSeen: map[int64]time.Time{}}
	a.Activity = &ActivityService{ctx: ctx, log: log, catalog: cat}
	a.Settings = &SettingsService{
		ctx: ctx, log: log, catalog: cat, secrets: opts.Secrets, settings: settings, level: level,
		backend: opts.SecretsBackend, secretsFile: opts.SecretsFile,
	}
	if opts.PollInterval >= 0 {
		a.poller = fleet.NewPoller(adapter, opts.Secrets, fleet.PollerOptions{
			Interval: opts.PollInterval, Client: opts.Client, Logger: log, OnSnapshot: a.Fleet.onSnapshot,
		})
		a.Fleet.poll = a.poller.PollOnce
	}
	return a, nil
}

// Bindings lists the services bound to the frontend (Wails Bind) and served over /rpc in
// web mode. Every exported method of each is part of the frontend's contract.
func (a *App) Bindings() []any {
	return []any{a.Platforms, a.Syncs, a.Fleet, a.Activity, a.Settings}
}

// Startup is called by Wails when the window is ready (and by web mode before it serves):
// it hands the context to an emitter that needs it and starts the background poller.
func (a *App) Startup(ctx context.Context) {
	if s, ok := a.emitter.(contextStarter); ok {
		s.start(ctx)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.poller == nil || a.pollDone != nil || a.closed {
		return
	}
	pctx, cancel := context.WithCancel(a.ctx)
	a.pollCancel, a.pollDone = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		a.poller.Run(pctx)
	}(a.pollDone)
}

// Shutdown is called by Wails when the window closes: it cancels running work, stops the
// poller and closes the catalog. Calling it again does nothing.
func (a *App) Shutdown(context.Context) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	cancel, done := a.pollCancel, a.pollDone
	a.mu.Unlock()
	a.cancel()
	if cancel != nil {
		cancel()
		<-done
	}
	a.Fleet.shutdown()
	a.syncer.Close()
	if err := a.catalog.Close(); err != nil {
		a.log.Warn("close catalog", "err", err)
	}
}

// failure maps err for the frontend (see toError); nil stays a nil error.
func failure(log *slog.Logger, op string, err error) error {
	if err == nil {
		return nil
	}
	return toError(log, op, err)
}

// parseLevel reads a settings log level; anything unknown is info.
func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
