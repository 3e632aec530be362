// Package agent is the mooxsync agent: the headless service next to one platform's
// application database. It is enrolled by the control center, keeps the desired state the
// control center puts to it, serves the control plane and the Moox entity API, and receives
// signed data deliveries (SyncWebhook) that one ordered worker per sync applies (SyncJob).
// PROTOCOL.md is the contract it speaks.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/handler"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// Version is the agent's version, reported by /api/health, /api/status and enrollment.
// Release builds set it with -ldflags "-X github.com/mooxsync/mooxsync/backend/agent.Version=…".
var Version = "0.1.0-dev"

// Applier checks and applies data deliveries in the application database (apply.Applier
// behind an adapter, or a fake in tests).
type Applier interface {
	// CheckBatch checks a batch's models and columns against the live schema without
	// writing anything; it returns protocol errors unknown_model or unknown_column.
	CheckBatch(ctx context.Context, sync protocol.Sync, batch *protocol.Batch) error
	// ApplyBatch applies a batch in one transaction, exactly once: a batch already applied
	// is reported with AlreadyApplied and changes nothing.
	ApplyBatch(ctx context.Context, sync protocol.Sync, batch *protocol.Batch) (ApplyResult, error)
}

// Source captures this platform's changes and delivers them to the targets of its syncs
// (source.Source: the capture Pump and the delivery Manager, or a fake in tests).
type Source interface {
	// Apply brings capture and delivery in line with st, self being this platform. An
	// error is logged; the state stays in force and the Source keeps trying.
	Apply(ctx context.Context, st protocol.State, self int64) error
	// Status returns the health of every sync whose source is this platform, by sync id,
	// with role "source".
	Status(ctx context.Context) (map[int64]protocol.SyncStatus, error)
}

// sourceApplyTimeout bounds how long a change of the desired state waits for capture and
// delivery to follow it (trigger DDL may wait for locks in the application database);
// whatever is left is retried in the background.
const sourceApplyTimeout = 30 * time.Second

// ApplyResult is the outcome of a successful ApplyBatch.
type ApplyResult struct {
	AlreadyApplied bool
}

// ModelSource lists the tables of the application database.
type ModelSource interface {
	Models(ctx context.Context) ([]protocol.Model, error)
}

// RelationStore reads and writes the platform relations (model_platform) of one record,
// found by the value of its unique identifier field (appdb.DB, or a fake in tests). A model
// that does not exist is a *protocol.Error with CodeUnknownModel, a record that does not
// exist one with CodeNotFound.
type RelationStore interface {
	// Relations returns the platforms the record belongs to, sorted.
	Relations(ctx context.Context, model, key string) ([]int64, error)
	// SetRelations rewrites them in one transaction, so that capture re-delivers the
	// record, and returns them as stored.
	SetRelations(ctx context.Context, model, key string, platformIDs []int64) ([]int64, error)
}

// RetryPolicy bounds the apply retries of a batch before it moves to the dead letters.
type RetryPolicy struct {
	// MaxAttempts is how many times a batch is tried in all (at least 1).
	MaxAttempts int
	// Backoff is the wait after the first failure; it doubles after each further one,
	// up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
}

// DefaultRetryPolicy is the retry policy used when Options leaves it zero.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 5, Backoff: time.Second, MaxBackoff: time.Minute}

// DefaultInboxRetention is how long an applied batch stays in the inbox, its id answered as
// a duplicate, before it is pruned.
const DefaultInboxRetention = 7 * 24 * time.Hour

// DefaultBodyMemory bounds the bytes that large request bodies being read and handled may
// hold at once (see Options.BodyMemory).
const DefaultBodyMemory = 64 << 20

// TokenGrace is how long after a token rotation is confirmed deliveries signed with pair
// keys derived from the previous token are still accepted, so that peers keep delivering
// until the control center hands them the new pair keys.
const TokenGrace = 15 * time.Minute

// housekeepingInterval is how often the agent prunes seen ids and applied batches.
const housekeepingInterval = time.Minute

// Options are the dependencies and settings of an Agent.
type Options struct {
	// SyncToken is the fleet's bootstrap secret (SYNC_TOKEN), at least 32 characters.
	SyncToken string
	// Store is the agent's own state database.
	Store *state.Store
	// Applier and Models reach the application database.
	Applier Applier
	Models  ModelSource
	// Source captures and delivers this platform's changes; nil: the agent is a target only.
	Source Source
	// Relations serves GET and PUT /api/relations/{model}/{key}; nil answers them 404.
	Relations RelationStore
	// Transformers are the transformers registered on this agent: PUT /api/state refuses a
	// sync this platform is the source of that names another (or a config it refuses), and
	// GET /api/models reports their names. Default transform.Default().
	Transformers *transform.Registry
	// Handlers are the sync handlers registered on this agent, reported by GET /api/models.
	// Default handler.Default().
	Handlers *handler.Registry
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// WebhookPath is the data-plane path (default protocol.DefaultWebhookPath).
	WebhookPath string
	// WebhookDisabled makes the webhook path answer 404 (SYNC_WEBHOOK_ENABLED=false).
	WebhookDisabled bool
	// BodyLimit is the largest accepted request body (default protocol.DefaultBodyLimit).
	BodyLimit int64
	// BodyMemory bounds the bytes held by the large request bodies (over 64 KiB) in flight
	// together; a request that would go over it is answered 503 with Retry-After. Default
	// DefaultBodyMemory, and never less than BodyLimit.
	BodyMemory int64
	// InboxRetention is how long an applied batch is kept, its id answered as a duplicate,
	// before it is pruned (default DefaultInboxRetention).
	InboxRetention time.Duration
	// Reconciler runs reconciliations (source side) and answers the target's reconcile
	// endpoints; nil: the Source when it implements Reconciler (source.Source does),
	// otherwise both are disabled.
	Reconciler Reconciler
	// BackupJob is SYNC_BACKUP_JOB_ENABLED: every enabled sync from this platform is
	// reconciled every `interval` minutes of the sync (at least one).
	BackupJob bool
	// InitialLoad starts a reconciliation run (the initial load) for every sync from this
	// platform that appears or is enabled again while the agent runs.
	InitialLoad bool
	// TLSFingerprint is the fingerprint of the certificate served, reported at enrollment;
	// empty when serving plain HTTP.
	TLSFingerprint string
	// Version is reported by the endpoints (default Version).
	Version string
	// Retry is the apply retry policy (default DefaultRetryPolicy).
	Retry RetryPolicy
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Agent is a running agent. Build it with New, serve Handler, call Start, and Stop on exit.
type Agent struct {
	opts     Options
	log      *slog.Logger
	store    *state.Store
	verifier protocol.Verifier
	started  time.Time

	// mu serialises enrollment and every change of the desired state.
	mu         sync.Mutex
	enrollment atomic.Pointer[state.Enrollment]
	desired    atomic.Pointer[protocol.State]

	bodies   *bodyBudget
	decoded  *decodedBatches
	workers  *workers
	runs     *runs
	stopOnce sync.Once
	stopBg   chan struct{}
	bgDone   chan struct{}
}

// New builds an agent from its options, loading the enrollment and the desired state in
// force from the store.
func New(ctx context.Context, opts Options) (*Agent, error) {
	if err := protocol.CheckToken(opts.SyncToken); err != nil {
		return nil, fmt.Errorf("SYNC_TOKEN: %w", err)
	}
	if opts.Store == nil || opts.Applier == nil || opts.Models == nil {
		return nil, errors.New("agent: Store, Applier and Models are required")
	}
	if opts.WebhookPath == "" {
		opts.WebhookPath = protocol.DefaultWebhookPath
	}
	if r, ok := opts.Source.(Reconciler); ok && opts.Reconciler == nil {
		opts.Reconciler = r // source.Source reconciles too
	}
	if err := CheckWebhookPath(opts.WebhookPath); err != nil {
		return nil, err
	}
	if opts.BodyLimit <= 0 {
		opts.BodyLimit = protocol.DefaultBodyLimit
	}
	if opts.BodyMemory <= 0 {
		opts.BodyMemory = DefaultBodyMemory
	}
	opts.BodyMemory = max(opts.BodyMemory, opts.BodyLimit)
	if opts.InboxRetention <= 0 {
		opts.InboxRetention = DefaultInboxRetention
	}
	if opts.Version == "" {
		opts.Version = Version
	}
	if opts.Retry.MaxAttempts <= 0 {
		opts.Retry.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if opts.Retry.Backoff <= 0 {
		opts.Retry.Backoff = DefaultRetryPolicy.Backoff
	}
	if opts.Retry.MaxBackoff < opts.Retry.Backoff {
		opts.Retry.MaxBackoff = max(DefaultRetryPolicy.MaxBackoff, opts.Retry.Backoff)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Transformers == nil {
		opts.Transformers = transform.Default()
	}
	if opts.Handlers == nil {
		opts.Handlers = handler.Default()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{
		opts:     opts,
		log:      log,
		store:    opts.Store,
		verifier: protocol.Verifier{Now: opts.Now},
		started:  opts.Now(),
		bodies:   &bodyBudget{max: opts.BodyMemory},
		decoded:  newDecodedBatches(),
		stopBg:   make(chan struct{}),
		bgDone:   make(chan struct{}),
	}
	e, err := a.store.Enrollment(ctx)
	switch {
	case err == nil:
		a.enrollment.Store(&e)
	case !errors.Is(err, state.ErrNotFound):
		return nil, err
	}
	st, err := a.store.DesiredState(ctx)
	switch {
	case err == nil:
		st = normalizeState(st)
		a.desired.Store(&st)
	case !errors.Is(err, state.ErrNotFound):
		return nil, err
	}
	a.workers = newWorkers(a)
	a.runs = newRuns()
	return a, nil
}

// Start brings capture and delivery in line with the state in force, then starts the
// apply workers of the syncs in force and the housekeeping (pruning of seen ids and
// applied batches, and erasing a previous token whose grace is over).
func (a *Agent) Start() {
	a.mu.Lock()
	a.applySource(context.Background())
	a.mu.Unlock()
	a.workers.reconcile()
	a.runs.start(a)
	go a.background()
}

// applySource hands the state in force to the Source. The caller holds a.mu, so that the
// Source sees the states in the order they came into force.
func (a *Agent) applySource(ctx context.Context) {
	if a.opts.Source == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sourceApplyTimeout)
	defer cancel()
	st := a.current()
	if err := a.opts.Source.Apply(ctx, st, a.selfID()); err != nil {
		a.log.Error("capture and delivery do not follow the desired state yet", "revision", st.Revision, "err", err)
	}
}

// Stop stops the apply workers, waiting for each to finish the batch it is applying. It is
// safe to call more than once.
func (a *Agent) Stop() {
	a.stopOnce.Do(func() {
		close(a.stopBg)
		a.runs.stop()
		a.workers.stopAll()
		<-a.bgDone
	})
}

// background runs the housekeeping at start and once a minute.
func (a *Agent) background() {
	defer close(a.bgDone)
	t := time.NewTicker(housekeepingInterval)
	defer t.Stop()
	for {
		a.housekeep(context.Background())
		select {
		case <-a.stopBg:
			return
		case <-t.C:
		}
	}
}

// housekeep prunes the seen message ids and the applied batches past the retention, and
// erases the previous platform token once its grace is over. Failures are logged; the next
// round tries again.
func (a *Agent) housekeep(ctx context.Context) {
	now := a.opts.Now()
	if n, err := a.store.PruneSeen(ctx, now); err != nil {
		a.log.Error("prune seen message ids", "err", err)
	} else if n > 0 {
		a.log.Debug("pruned seen message ids", "count", n)
	}
	if n, err := a.store.PruneInbox(ctx, now.Add(-a.opts.InboxRetention)); err != nil {
		a.log.Error("prune applied batches", "err", err)
	} else if n > 0 {
		a.log.Info("pruned applied batches", "count", n, "retention", a.opts.InboxRetention.String())
	}
	if e := a.enrolled(); e != nil && e.PreviousToken != "" && !e.ConfirmedAt.IsZero() {
		a.forgetPreviousToken(ctx, now)
	}
}

// Handler returns the agent's HTTP handler: the control plane under /api/ and the webhook.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	a.routes(mux)
	return a.logRequests(mux)
}

// enrolled returns the enrollment, or nil before it.
func (a *Agent) enrolled() *state.Enrollment { return a.enrollment.Load() }

// selfID is the enrolled platform id, or 0.
func (a *Agent) selfID() int64 {
	if e := a.enrolled(); e != nil {
		return e.Platform.ID
	}
	return 0
}

// current returns the desired state in force; before the first PUT /api/state it is an
// empty state of revision 0 for the enrolled platform.
func (a *Agent) current() protocol.State {
	if st := a.desired.Load(); st != nil {
		return *st
	}
	st := protocol.State{}
	if e := a.enrolled(); e != nil {
		st.Platform = protocol.PlatformRef{ID: e.Platform.ID, Name: e.Platform.Name, Domain: e.Platform.Domain,
			AgentURL: e.Platform.AgentURL}
	}
	return normalizeState(st)
}

// pairKeys are the keys K_pair(sender->self) that verify a delivery from sender at now: one
// per platform token in force on the data plane (two during a rotation and its grace).
func (a *Agent) pairKeys(e *state.Enrollment, sender int64, now time.Time) [][]byte {
	tokens := e.DataTokens(now, TokenGrace)
	keys := make([][]byte, len(tokens))
	for i, t := range tokens {
		keys[i] = protocol.PairKey(protocol.ControlKey(t, a.opts.SyncToken), sender, e.Platform.ID)
	}
	return keys
}

// ownPlatform is this agent's platform as the state in force describes it, falling back to
// the platform given at enrollment.
func (a *Agent) ownPlatform() (protocol.Platform, bool) {
	e := a.enrolled()
	if e == nil {
		return protocol.Platform{}, false
	}
	for _, p := range a.current().Platforms {
		if p.ID == e.Platform.ID {
			return p, true
		}
	}
	return e.Platform, true
}

// findSync returns the sync with the given id in the state in force.
func (a *Agent) findSync(id int64) (protocol.Sync, bool) {
	for _, s := range a.current().Syncs {
		if s.ID == id {
			return s, true
		}
	}
	return protocol.Sync{}, false
}

// setState makes st the state in force (already persisted), hands it to the Source, and
// starts or stops workers.
// The caller holds a.mu.
func (a *Agent) setState(st protocol.State) {
	st = normalizeState(st)
	a.desired.Store(&st)
	a.applySource(context.Background())
	a.workers.reconcile()
	a.runs.stateChanged(a)
}

// normalizeState turns nil lists into empty ones, so that JSON shows [] rather than null.
func normalizeState(st protocol.State) protocol.State {
	if st.Platforms == nil {
		st.Platforms = []protocol.Platform{}
	}
	if st.Syncs == nil {
		st.Syncs = []protocol.Sync{}
	}
	if st.Peers == nil {
		st.Peers = []protocol.Peer{}
	}
	return st
}
