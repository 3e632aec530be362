// Package source runs the agent's source role: the capture Pump (SyncListener), which keeps
// the triggers of the tables its syncs read and moves their changes out of the application
// database's outbox into the agent's state file, and the delivery Manager (PrepareSyncJob),
// which sends them in signed batches to the targets. It serves the agent as its
// agent.Source.
package source

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/deliver"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/reconcile"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// retryInterval is how often a desired state whose delivery side failed to apply is tried
// again.
const retryInterval = 5 * time.Second

// Options configure a Source.
type Options struct {
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// ListenerDisabled is SYNC_LISTENER_ENABLED=false: no table is captured (the capture
	// triggers are removed); what was captured before is still delivered.
	ListenerDisabled bool
	// UniqueIdentifierFields find a change's key (default Moox's).
	UniqueIdentifierFields []string
	// Transformers holds the transformers syncs and TransformerBindings may name (default:
	// transform.Default() with the application database's own, see RegisterTransformers).
	Transformers *transform.Registry
	// TransformerBindings are the agent's transformer_bindings.
	TransformerBindings map[string]transform.Binding
	// Capture and Deliver tune the Pump and the Manager; their Logger and Capture fields
	// are set by Open.
	Capture capture.Options
	Deliver deliver.Options
}

// Source is the capture Pump and the delivery Manager of one agent. Build it with Open,
// hand it to the agent, Start it, and Stop it on shutdown before the databases close.
type Source struct {
	app      *sqldb.DB
	pump     *capture.Pump
	mgr      *deliver.Manager
	log      *slog.Logger
	listener bool
	cfg      deliver.Config

	mu     sync.Mutex // serialises Apply
	last   *protocol.State
	self   int64
	failed bool // the last Apply did not reach the delivery side's end

	targetOnce sync.Once
	tgt        *reconcile.Target

	startOnce, stopOnce sync.Once
	cancel              context.CancelFunc
	wg                  sync.WaitGroup
}

var _ agent.Source = (*Source)(nil)

// Open builds the Pump over the application database app and the Manager over stateDB, a
// pool on the agent's state file (state.Store.OpenShared) where both keep their tables.
func Open(ctx context.Context, app *sqldb.DB, stateDB *sql.DB, opts Options) (*Source, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	copts := opts.Capture
	copts.Logger = log
	pump, err := capture.New(ctx, app, stateDB, copts)
	if err != nil {
		return nil, err
	}
	dopts := opts.Deliver
	dopts.Logger = log
	dopts.Capture = pump
	dopts.Records = capture.NewRelations(app)
	dopts.Transformers = opts.Transformers
	if dopts.Transformers == nil {
		dopts.Transformers = transform.Default()
		RegisterTransformers(dopts.Transformers, app)
	}
	mgr, err := deliver.NewManager(ctx, stateDB, pump.Queue(), dopts)
	if err != nil {
		return nil, err
	}
	return &Source{
		app:      app,
		pump:     pump,
		mgr:      mgr,
		log:      log,
		listener: !opts.ListenerDisabled,
		cfg: deliver.Config{UniqueIdentifierFields: opts.UniqueIdentifierFields,
			TransformerBindings: opts.TransformerBindings},
	}, nil
}

// Apply brings the senders and the capture triggers in line with st, self being this
// platform. The senders go first, so that a new sync's cursor is set before its triggers
// capture anything. A table that cannot be captured does not stop the others: the error
// is returned, shown by Status, and the Pump tries it again at every schema check. When
// the delivery side fails, the whole state is tried again every few seconds until it
// succeeds or another state comes.
func (s *Source) Apply(ctx context.Context, st protocol.State, self int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last, s.self = &st, self
	return s.applyLocked(ctx)
}

func (s *Source) applyLocked(ctx context.Context) error {
	st, self := *s.last, s.self
	if err := s.mgr.Apply(ctx, st, self, s.cfg); err != nil {
		s.failed = !errors.Is(err, deliver.ErrClosed)
		return fmt.Errorf("delivery: %w", err)
	}
	s.failed = false
	var models []string
	if s.listener { // else nothing is captured: every mooxsync trigger goes
		watched := s.mgr.Watched()
		if slices.Contains(watched, capture.RelationsTable) {
			if err := capture.EnsureRelationsTable(ctx, s.app); err != nil {
				s.log.Error("platform relations table not created", "err", err)
			}
		}
		models = append(capture.SourceModels(st, self), watched...)
	}
	if err := s.pump.ApplyModels(ctx, models); err != nil {
		return err
	}
	return nil
}

// Start runs the Pump, the Manager's purges and the retries of a failed Apply until Stop.
func (s *Source) Start() {
	s.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		s.wg.Go(func() { _ = s.pump.Run(ctx) })
		s.wg.Go(func() { _ = s.mgr.Run(ctx) })
		s.wg.Go(func() { s.retry(ctx) })
	})
}

// retry applies the last state again while its delivery side keeps failing.
func (s *Source) retry(ctx context.Context) {
	t := time.NewTicker(retryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.failed && s.last != nil {
			if err := s.applyLocked(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("applying the desired state to capture and delivery failed again", "err", err)
			} else if !s.failed {
				s.log.Info("desired state applied to capture and delivery")
			}
		}
		s.mu.Unlock()
	}
}

// Stop stops the senders (a batch in flight is sent again, under the same id, after the
// next start), the Pump and the retries, and waits for them. Safe to call more than once,
// with or without Start.
func (s *Source) Stop() {
	s.stopOnce.Do(func() {
		s.startOnce.Do(func() {}) // a later Start starts nothing
		if s.cancel != nil {
			s.cancel()
		}
		s.mgr.Close()
		s.wg.Wait()
	})
}

// Status returns the health of every sync whose source is this platform, by sync id.
func (s *Source) Status(ctx context.Context) (map[int64]protocol.SyncStatus, error) {
	return s.mgr.Status(ctx)
}
