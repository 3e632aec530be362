// Package deliver is the agent's PrepareSyncJob: for every enabled sync whose source is
// this platform, a sender reads the sync's model's changes from the capture queue in
// order, builds batches of at most BatchSize changes, signs them with the pair key of the
// target, POSTs them to the target's webhook, and advances its cursor only after the target
// acknowledged (202 accepted or 200 duplicate).
//
// Delivery is exactly-once friendly: a batch's id and queue range are persisted before it
// is sent, and after a failure or a restart the same range is sent again under the same
// id, which the receiver recognises as a duplicate. Changes that came from the target are
// not sent back (echo), and nothing is skipped silently.
package deliver

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// Default tuning of a Manager.
const (
	DefaultBatchSize      = 1000
	DefaultMaxBatchBytes  = 8 << 20
	DefaultLinger         = 10 * time.Millisecond
	DefaultBackoffBase    = 100 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultRequestTimeout = time.Minute
	DefaultPurgeInterval  = 2 * time.Second
)

// DefaultUniqueIdentifierFields are Moox's unique_identifier_fields.
var DefaultUniqueIdentifierFields = []string{"ulid", "uuid", "slug", "name", "title"}

// ErrClosed is returned by Apply after the Manager was closed.
var ErrClosed = errors.New("deliver: manager closed")

// CaptureStatus reports, per model, what capture has not yet moved to the queue and its
// errors (*capture.Pump implements it).
type CaptureStatus interface {
	ModelStatus(ctx context.Context) (map[string]capture.ModelStatus, error)
}

// Options are the dependencies and tuning of a Manager. Zero values take the defaults.
type Options struct {
	// Logger receives structured logs; nil discards them. Keys never appear in them.
	Logger *slog.Logger
	// Capture adds the outbox backlog and trigger errors to Status; nil leaves them out.
	Capture CaptureStatus
	// BatchSize is the most changes one batch carries.
	BatchSize int
	// MaxBatchBytes closes a batch early once its body reaches this size (a single change
	// larger than it still travels alone); receivers refuse bodies over 32 MiB by default.
	MaxBatchBytes int
	// Linger is how long a sender waits for more changes when it has fewer than BatchSize.
	Linger time.Duration
	// BackoffBase and BackoffMax bound the exponential back-off (with full jitter) between
	// attempts of a failed batch; a permanent error is retried every BackoffMax.
	BackoffBase, BackoffMax time.Duration
	// RequestTimeout bounds one POST.
	RequestTimeout time.Duration
	// PurgeInterval is how often queue rows every sender is past are deleted.
	PurgeInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Transformers holds the transformers that syncs (use_transformer_class) and
	// Config.TransformerBindings may name (default transform.Default()).
	Transformers *transform.Registry
	// Records reads the application database for syncs with use_platform_relations and for
	// transformers with dependencies (*capture.Relations); without it such syncs cannot
	// deliver.
	Records Records
}

// Config is the part of the agent's configuration that delivery uses.
type Config struct {
	// UniqueIdentifierFields are tried in order to find a change's key: the first one the
	// row holds with a string or number value (default DefaultUniqueIdentifierFields).
	UniqueIdentifierFields []string
	// TransformerBindings are the agent's transformer_bindings: the transformer of a source
	// model whose syncs name none.
	TransformerBindings map[string]transform.Binding
}

// Records reads records of the application database for delivery (*capture.Relations).
type Records interface {
	// ID returns the local id (primary key, as text) of a row image of model.
	ID(ctx context.Context, model string, image []byte) (id string, found bool, err error)
	// Platforms returns the platforms the record of model with local id belongs to
	// (model_platform), sorted.
	Platforms(ctx context.Context, model, id string) ([]int64, error)
	// Row returns the current row image of the record of model with local id.
	Row(ctx context.Context, model, id string) (image []byte, found bool, err error)
	// IDByKey returns the local id of the record of model whose field has value.
	IDByKey(ctx context.Context, model, field string, value any) (id string, found bool, err error)
}

// Dependency is a table whose rows belong to records of a sync's model: a change of one of
// them re-delivers the record it names by its local id in Column.
type Dependency struct {
	Table  string
	Column string
}

// Dependent is implemented by transformers whose output depends on rows of other tables
// (the wp_user transformer reads the user's meta rows). Capture watches those tables too,
// and a change of one of their rows re-delivers the record of model it belongs to, as it
// is then.
type Dependent interface {
	Dependencies(model string) []Dependency
}

// Manager runs one sender per enabled sync whose source is this platform and keeps them
// in line with the desired state. Build it with NewManager, call Apply with every desired
// state, and Run it.
type Manager struct {
	db        *sql.DB
	store     *store
	q         *capture.Queue
	opts      Options
	log       *slog.Logger
	pins      *pins
	transport *http.Transport
	client    *http.Client

	ctx    context.Context // parent of every sender
	cancel context.CancelFunc

	mu      sync.Mutex // guards the fields below; held by Apply and purges
	closed  bool
	applied bool
	st      protocol.State
	self    int64
	active  []int64           // enabled syncs with source self: they hold back the purge
	broken  map[int64]string  // active syncs that cannot run, with the reason
	senders map[int64]*sender // running senders
}

// NewManager builds a Manager over the agent's state database stateDB, where it creates its
// tables, and the capture queue q.
func NewManager(ctx context.Context, stateDB *sql.DB, q *capture.Queue, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if opts.Linger < 0 {
		opts.Linger = 0
	} else if opts.Linger == 0 {
		opts.Linger = DefaultLinger
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = DefaultBackoffBase
	}
	if opts.BackoffMax < opts.BackoffBase {
		opts.BackoffMax = max(DefaultBackoffMax, opts.BackoffBase)
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.PurgeInterval <= 0 {
		opts.PurgeInterval = DefaultPurgeInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Transformers == nil {
		opts.Transformers = transform.Default()
	}
	st, err := openStore(ctx, stateDB)
	if err != nil {
		return nil, err
	}
	p := &pins{byAddr: map[string]string{}}
	tr := newTransport(p)
	mctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		db:        stateDB,
		store:     st,
		q:         q,
		opts:      opts,
		log:       opts.Logger.With("component", "deliver"),
		pins:      p,
		transport: tr,
		client:    &http.Client{Transport: tr, CheckRedirect: noRedirect},
		ctx:       mctx,
		cancel:    cancel,
		broken:    map[int64]string{},
		senders:   map[int64]*sender{},
	}, nil
}

// noRedirect refuses redirects: a signed delivery goes to the configured URL only.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// spec is everything a running sender depends on; a sender whose spec changes restarts.
type spec struct {
	syncID      int64
	model       string
	self        int64
	target      int64
	url         string
	addr        string // host:port, for https peers
	fingerprint string
	key         string // as the state carries it, base64
	fields      string // unique identifier fields joined by NUL
	transformer string // the transformer's name and config, "" for none
	relations   bool   // use_platform_relations
	watch       string // watched tables: "table\x01column" joined by NUL (see watches)
}

// watches returns the tables a spec watches besides its model, with the column of each
// that holds the record's local id ("" for RelationsTable rows, which are read whole).
func (sp spec) watches() map[string]string {
	if sp.watch == "" {
		return nil
	}
	out := map[string]string{}
	for _, w := range strings.Split(sp.watch, "\x00") {
		table, col, _ := strings.Cut(w, "\x01")
		out[table] = col
	}
	return out
}

// transformerKey names the transformer sync s uses on its source with its config, "" for
// none: a sender restarts when it changes.
func transformerKey(s protocol.Sync, bindings map[string]transform.Binding) string {
	name, config := "", json.RawMessage(nil)
	if s.UseTransformerClass != nil && strings.TrimSpace(*s.UseTransformerClass) != "" {
		name, config = strings.TrimSpace(*s.UseTransformerClass), s.TransformerConfig
	} else if b, ok := bindings[s.SourceModel]; ok {
		name, config = b.Transformer, b.Config
	}
	if name == "" {
		return ""
	}
	var buf bytes.Buffer
	if len(config) > 0 && json.Compact(&buf, config) == nil {
		return name + "\x00" + buf.String()
	}
	return name + "\x00" + string(config)
}

// specFor resolves the peer of a sync into a spec, with t the transformer it uses (nil:
// none).
func specFor(s protocol.Sync, st protocol.State, self int64, fields []string, cfg Config, t transform.Transformer) (spec, error) {
	sp := spec{syncID: s.ID, model: s.SourceModel, self: self, target: s.TargetPlatformID,
		fields: strings.Join(fields, "\x00"), transformer: transformerKey(s, cfg.TransformerBindings),
		relations: s.UsePlatformRelations && s.SourceModel != capture.RelationsTable}
	if s.SourceModel == "" {
		return sp, errors.New("the sync names no source model")
	}
	var watch []string
	if sp.relations {
		watch = append(watch, capture.RelationsTable+"\x01")
	}
	if d, ok := t.(Dependent); ok {
		for _, dep := range d.Dependencies(s.SourceModel) {
			if dep.Table == "" || dep.Column == "" || dep.Table == s.SourceModel || dep.Table == capture.RelationsTable {
				return sp, fmt.Errorf("transformer dependency %q.%q cannot be watched", dep.Table, dep.Column)
			}
			watch = append(watch, dep.Table+"\x01"+dep.Column)
		}
	}
	slices.Sort(watch)
	sp.watch = strings.Join(slices.Compact(watch), "\x00")
	i := slices.IndexFunc(st.Peers, func(p protocol.Peer) bool { return p.PlatformID == s.TargetPlatformID })
	if i < 0 {
		return sp, fmt.Errorf("the desired state has no peer for target platform %d", s.TargetPlatformID)
	}
	peer := st.Peers[i]
	if _, err := protocol.DecodeKey(peer.Key); err != nil {
		return sp, fmt.Errorf("pair key of platform %d: %w", peer.PlatformID, err)
	}
	sp.key = peer.Key
	u, err := url.Parse(peer.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return sp, fmt.Errorf("peer url %q of platform %d is not an http(s) URL", peer.URL, peer.PlatformID)
	}
	path := peer.WebhookPath
	if path == "" {
		path = protocol.DefaultWebhookPath
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	sp.url = strings.TrimRight(peer.URL, "/") + path
	if u.Scheme == "https" {
		if peer.TLSFingerprint == "" {
			return sp, fmt.Errorf("peer %s of platform %d has no pinned TLS fingerprint", peer.URL, peer.PlatformID)
		}
		sp.addr = peerAddr(u)
		sp.fingerprint = peer.TLSFingerprint
	}
	return sp, nil
}

// Apply makes the senders match st, self being this platform: it starts a sender for every
// enabled sync whose source is self, stops the senders of syncs that went away or were
// disabled, and restarts those whose peer (URL, key, fingerprint) or model changed. A new
// sync's cursor starts at the end of the queue: the rows already there are the initial
// load's job. The cursors of syncs no longer in st are deleted. Call Apply before the
// capture Pump's Apply, so that a new sync's cursor is set before its triggers capture.
func (m *Manager) Apply(ctx context.Context, st protocol.State, self int64, cfg Config) error {
	fields := cfg.UniqueIdentifierFields
	if len(fields) == 0 {
		fields = DefaultUniqueIdentifierFields
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	var (
		specs        = map[int64]spec{}
		broken       = map[int64]string{}
		active       []int64
		source       []int64
		newPins      = map[string]string{}
		transformers = map[int64]transform.Transformer{}
	)
	for _, s := range st.Syncs {
		if s.SourcePlatformID != self {
			continue
		}
		source = append(source, s.ID)
		if !s.Status {
			continue
		}
		active = append(active, s.ID)
		t, err := transform.ForSync(m.opts.Transformers, s, cfg.TransformerBindings)
		var sp spec
		if err == nil {
			sp, err = specFor(s, st, self, fields, cfg, t)
		}
		if err == nil && sp.watch != "" && m.opts.Records == nil {
			err = errors.New("platform relations and transformer dependencies need the application database, which delivery was not given")
		}
		if err != nil {
			broken[s.ID] = err.Error()
			m.log.Error("sync cannot deliver", "sync_id", s.ID, "err", err)
			continue
		}
		specs[s.ID] = sp
		transformers[s.ID] = t
		if sp.addr != "" {
			newPins[sp.addr] = sp.fingerprint
		}
	}

	for id, snd := range m.senders {
		if sp, ok := specs[id]; !ok || sp != snd.spec {
			snd.stop()
			delete(m.senders, id)
			m.log.Info("sender stopped", "sync_id", id)
		}
	}
	if n, err := m.store.forgetExcept(ctx, source); err != nil {
		return err
	} else if n > 0 {
		m.log.Info("forgot the cursors of removed syncs", "count", n)
	}
	maxID, err := m.q.MaxID(ctx)
	if err != nil {
		return err
	}
	purged, err := m.q.PurgedUpTo(ctx)
	if err != nil {
		return err
	}
	for _, id := range active {
		if err := m.store.ensureCursor(ctx, id, maxID, m.opts.Now()); err != nil {
			return err
		}
		// A disabled sync does not hold the purge back: enabled again after rows it had
		// not sent were purged, it starts at the end of the queue.
		if skipped, err := m.store.skipPurged(ctx, id, purged, maxID, m.opts.Now()); err != nil {
			return err
		} else if skipped {
			m.log.Warn("changes captured while the sync was disabled were purged; it starts at the end of the queue",
				"sync_id", id, "purged_upto", purged, "cursor", maxID)
		}
	}
	if m.pins.replace(newPins) {
		m.transport.CloseIdleConnections()
	}
	for id, sp := range specs {
		if _, ok := m.senders[id]; ok {
			continue
		}
		snd, err := newSender(m, sp, transformers[id])
		if err != nil {
			broken[id] = err.Error()
			continue
		}
		m.senders[id] = snd
		snd.start(m.ctx)
		m.log.Info("sender started", "sync_id", id, "model", sp.model, "target", sp.target, "url", sp.url)
	}
	m.st, m.self, m.active, m.broken, m.applied = st, self, active, broken, true
	return nil
}

// Watched returns the tables the running senders read besides their syncs' models
// (RelationsTable, transformers' dependencies), sorted: capture must capture them too.
func (m *Manager) Watched() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, snd := range m.senders {
		for table := range snd.spec.watches() {
			out = append(out, table)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Run deletes, every PurgeInterval, the queue rows that every active sender is past, until
// ctx ends; then it stops every sender (Close) and returns nil.
func (m *Manager) Run(ctx context.Context) error {
	defer m.Close()
	t := time.NewTicker(m.opts.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.Purge(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("purge of the capture queue failed", "err", err)
			}
		}
	}
}

// Purge deletes the queue rows at or below the lowest cursor of the enabled syncs with
// source self (all rows when there are none). A disabled sync does not hold the purge back;
// when it is enabled again after rows it had not sent were purged, it starts at the end of
// the queue. Nothing is purged before the first Apply.
func (m *Manager) Purge(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.applied || m.closed {
		return nil
	}
	var upto int64
	if len(m.active) == 0 {
		id, err := m.q.MaxID(ctx)
		if err != nil {
			return err
		}
		upto = id
	} else {
		c, ok, err := m.store.minCursor(ctx, m.active)
		if err != nil || !ok {
			return err
		}
		upto = c
	}
	n, err := m.q.Purge(ctx, upto)
	if n > 0 {
		m.log.Debug("purged the capture queue", "rows", n, "upto", upto)
	}
	return err
}

// Close stops every sender, waiting for each to finish, and closes idle connections. It is
// safe to call more than once; Apply fails afterwards.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	senders := m.senders
	m.senders = map[int64]*sender{}
	m.mu.Unlock()
	m.cancel()
	for _, s := range senders {
		s.stop()
	}
	m.transport.CloseIdleConnections()
}

// Status returns the health of every sync whose source is this platform, by sync id, with
// role "source": pending counts the changes captured but not yet acknowledged (in the
// outbox or the queue, echoes left out), lag_ms the age of the oldest of them, sent the
// changes acknowledged, failed the changes that could not be sent (no unique identifier).
func (m *Manager) Status(ctx context.Context) (map[int64]protocol.SyncStatus, error) {
	m.mu.Lock()
	st, self := m.st, m.self
	broken := m.broken
	senders := make(map[int64]*sender, len(m.senders))
	for id, s := range m.senders {
		senders[id] = s
	}
	m.mu.Unlock()

	cursors, err := m.store.cursors(ctx)
	if err != nil {
		return nil, err
	}
	var models map[string]capture.ModelStatus
	if m.opts.Capture != nil {
		if models, err = m.opts.Capture.ModelStatus(ctx); err != nil {
			return nil, err
		}
	}
	now := m.opts.Now()
	out := map[int64]protocol.SyncStatus{}
	for _, s := range st.Syncs {
		if s.SourcePlatformID != self {
			continue
		}
		ss := protocol.SyncStatus{ID: s.ID, Role: "source", Status: s.Status}
		c := cursors[s.ID]
		ss.Sent = c.Sent
		if !c.LastSync.IsZero() {
			v := c.LastSync.Format(time.RFC3339)
			ss.LastSync = &v
		}
		if s.Status {
			n, oldest, err := m.q.Pending(ctx, s.SourceModel, c.Cursor, s.TargetPlatformID)
			if err != nil {
				return nil, err
			}
			ms := models[s.SourceModel]
			n += ms.Pending
			if !ms.Oldest.IsZero() && (oldest.IsZero() || ms.Oldest.Before(oldest)) {
				oldest = ms.Oldest
			}
			ss.Pending = n
			if n > 0 && !oldest.IsZero() {
				ss.LagMS = max(0, now.Sub(oldest).Milliseconds())
			}
			msg := broken[s.ID]
			if snd := senders[s.ID]; snd != nil {
				var skipped string
				ss.Failed, msg, skipped = snd.health()
				if msg == "" {
					msg = skipped
				}
			}
			if msg == "" {
				msg = ms.Error
			}
			if msg != "" {
				ss.HasErrors = true
				ss.ErrorMessage = &msg
			}
		}
		out[s.ID] = ss
	}
	return out, nil
}

// backoff returns the wait before attempt+1 of a failed batch: full jitter over an
// exponential bound.
func (m *Manager) backoff(attempt int) time.Duration {
	bound := m.opts.BackoffMax
	if attempt < 30 {
		if d := m.opts.BackoffBase << attempt; d > 0 && d < bound {
			bound = d
		}
	}
	return time.Duration(rand.Int64N(int64(bound) + 1))
}
