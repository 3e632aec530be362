// Package capture is the agent's SyncListener: it keeps the capture triggers of the
// application tables that its syncs read, and moves the changes those triggers write into
// the application database's outbox over into the capture queue in the agent's own state
// database, from where the deliver package sends them.
//
// On PostgreSQL and MySQL, concurrent transactions commit out of seq order, so a cursor over
// the outbox would skip a row with a lower seq that commits late. The Pump therefore keeps
// no cursor there: it reads the oldest committed outbox rows, appends them to the queue,
// and then deletes exactly those rows from the outbox. Queue ids are assigned by the Pump
// alone, in the order rows became visible, so they are safe cursors for the senders.
package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// Default tuning of a Pump.
const (
	DefaultBatchSize      = 2000
	DefaultPollMin        = 2 * time.Millisecond
	DefaultPollMax        = 250 * time.Millisecond
	DefaultSafetyPoll     = time.Second
	DefaultSchemaInterval = 10 * time.Second
	DefaultSchemaProbe    = 250 * time.Millisecond
	// maxErrorWait is the longest wait after failed rounds.
	maxErrorWait = 5 * time.Second
)

// Options tune a Pump. Zero values take the defaults above.
type Options struct {
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// BatchSize is the most outbox rows one round moves.
	BatchSize int
	// PollMin and PollMax bound the adaptive polling interval: PollMin after a round that
	// found rows, doubling up to PollMax while the outbox stays empty.
	PollMin, PollMax time.Duration
	// SafetyPoll is the polling interval while PostgreSQL notifications wake the Pump.
	SafetyPoll time.Duration
	// SchemaInterval is how often the columns of captured tables are compared with the ones
	// their triggers were made for.
	SchemaInterval time.Duration
	// SchemaProbe is how often, on SQLite and MySQL, a cheap probe looks for a change of
	// the captured tables' columns, which brings that comparison forward.
	SchemaProbe time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ModelStatus is what capture knows about one model (table).
type ModelStatus struct {
	// Pending counts the outbox rows not yet moved to the queue; Oldest is the time of the
	// oldest of them.
	Pending int64
	Oldest  time.Time
	// Error is the last failure to install the model's triggers, "" when they are current.
	Error string
}

// Pump moves changes from the application database's outbox to the capture queue and keeps
// the capture triggers in line with the syncs in force. Build it with New, call Apply with
// every desired state, and Run it.
type Pump struct {
	app  *sqldb.DB
	q    *Queue
	log  *slog.Logger
	opts Options

	wake      chan struct{}
	listening atomic.Bool
	roundMu   sync.Mutex // one round at a time

	trigMu sync.Mutex // serialises trigger changes
	mu     sync.Mutex // guards the fields below
	want   []string
	cols   map[string][]protocol.Column // columns each table's triggers were installed for
	errs   map[string]string
}

// New builds a Pump over the application database app and the agent's state database
// stateDB, where it creates the capture queue. It makes sure the outbox exists.
func New(ctx context.Context, app *sqldb.DB, stateDB *sql.DB, opts Options) (*Pump, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.PollMin <= 0 {
		opts.PollMin = DefaultPollMin
	}
	if opts.PollMax < opts.PollMin {
		opts.PollMax = max(DefaultPollMax, opts.PollMin)
	}
	if opts.SafetyPoll <= 0 {
		opts.SafetyPoll = DefaultSafetyPoll
	}
	if opts.SchemaInterval <= 0 {
		opts.SchemaInterval = DefaultSchemaInterval
	}
	if opts.SchemaProbe <= 0 {
		opts.SchemaProbe = DefaultSchemaProbe
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := app.EnsureOutbox(ctx); err != nil {
		return nil, err
	}
	q, err := OpenQueue(ctx, stateDB)
	if err != nil {
		return nil, err
	}
	return &Pump{
		app:  app,
		q:    q,
		log:  opts.Logger.With("component", "capture"),
		opts: opts,
		wake: make(chan struct{}, 1),
		cols: map[string][]protocol.Column{},
		errs: map[string]string{},
	}, nil
}

// Queue returns the capture queue the Pump fills.
func (p *Pump) Queue() *Queue { return p.q }

// SourceModels returns the tables that the enabled syncs of st whose source is self read,
// sorted and without duplicates.
func SourceModels(st protocol.State, self int64) []string {
	var out []string
	for _, s := range st.Syncs {
		if s.Status && s.SourcePlatformID == self && s.SourceModel != "" {
			out = append(out, s.SourceModel)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Apply makes the capture triggers match st: it installs (or brings up to date) the
// triggers of every table an enabled sync with source self reads, and removes mooxsync
// triggers from every other table. A table that cannot be captured (it does not exist, for
// example) does not stop the others; its error is returned and reported by ModelStatus, and
// it is tried again at every schema check.
func (p *Pump) Apply(ctx context.Context, st protocol.State, self int64) error {
	return p.ApplyModels(ctx, SourceModels(st, self))
}

// ApplyModels is Apply with the tables to capture given: models, plus the tables that
// delivery watches besides the syncs' own (RelationsTable for platform relations, a
// transformer's dependencies).
func (p *Pump) ApplyModels(ctx context.Context, models []string) error {
	want := slices.Compact(slices.Sorted(slices.Values(models)))
	p.mu.Lock()
	p.want = want
	p.mu.Unlock()
	return p.syncTriggers(ctx, true)
}

// syncTriggers installs the wanted tables' triggers where they are missing, or, with force
// or when a table's columns changed, everywhere; and removes them from unwanted tables.
func (p *Pump) syncTriggers(ctx context.Context, force bool) error {
	p.trigMu.Lock()
	defer p.trigMu.Unlock()
	p.mu.Lock()
	want := slices.Clone(p.want)
	p.mu.Unlock()

	installed, err := p.app.InstalledTriggers(ctx)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	var errs []error
	for _, t := range want {
		if err := p.ensureTriggers(ctx, t, force, slices.Contains(installed, t)); err != nil {
			p.log.Warn("capture triggers not installed", "model", t, "err", err)
			errs = append(errs, err)
		}
	}
	for _, t := range installed {
		if slices.Contains(want, t) {
			continue
		}
		if err := p.app.RemoveTriggers(ctx, t); err != nil {
			p.log.Warn("capture triggers not removed", "model", t, "err", err)
			errs = append(errs, err)
			continue
		}
		p.log.Info("capture triggers removed", "model", t)
	}
	p.mu.Lock()
	for t := range p.cols {
		if !slices.Contains(want, t) {
			delete(p.cols, t)
		}
	}
	for t := range p.errs {
		if !slices.Contains(want, t) {
			delete(p.errs, t)
		}
	}
	p.mu.Unlock()
	return errors.Join(errs...)
}

// ensureTriggers installs the triggers of table t when force is set, when it has none, or
// when its columns differ from the ones its triggers were made for.
func (p *Pump) ensureTriggers(ctx context.Context, t string, force, present bool) error {
	p.app.Refresh(t)
	m, err := p.app.Model(ctx, t)
	if err == nil {
		p.mu.Lock()
		prev, known := p.cols[t]
		p.mu.Unlock()
		changed := known && !slices.Equal(prev, m.Columns)
		if !force && present && known && !changed {
			return nil
		}
		if err = p.app.InstallTriggers(ctx, t); err == nil {
			p.mu.Lock()
			p.cols[t] = m.Columns
			delete(p.errs, t)
			p.mu.Unlock()
			switch {
			case changed:
				p.log.Info("capture triggers reinstalled: columns changed", "model", t)
			case !present:
				p.log.Info("capture triggers installed", "model", t)
			}
			return nil
		}
	}
	err = fmt.Errorf("capture %q: %w", t, err)
	p.mu.Lock()
	p.errs[t] = err.Error()
	p.mu.Unlock()
	return err
}

// ModelStatus returns, per model, the outbox rows not yet moved and the trigger errors.
func (p *Pump) ModelStatus(ctx context.Context) (map[string]ModelStatus, error) {
	counts, err := p.app.CountChanges(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]ModelStatus, len(counts))
	for m, c := range counts {
		out[m] = ModelStatus{Pending: c.Count, Oldest: c.Oldest}
	}
	p.mu.Lock()
	for m, e := range p.errs {
		s := out[m]
		s.Error = e
		out[m] = s
	}
	p.mu.Unlock()
	return out, nil
}

// Once moves one round: at most BatchSize of the oldest committed outbox rows are appended
// to the queue, and then deleted from the outbox. It returns how many rows it moved. Rows
// appended before but not yet deleted from the outbox (a crash or an error in between) are
// deleted first.
func (p *Pump) Once(ctx context.Context) (int, error) {
	p.roundMu.Lock()
	defer p.roundMu.Unlock()
	if p.q.hasUnconfirmed() {
		seqs, err := p.q.unconfirmedSeqs(ctx)
		if err != nil {
			return 0, err
		}
		if _, err := p.app.DeleteChanges(ctx, seqs); err != nil {
			return 0, err
		}
		p.q.Confirm()
	}
	start := time.Now()
	rows, err := p.app.ReadChangesRaw(ctx, 0, p.opts.BatchSize)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, nil
	}
	read := time.Now()
	if _, err := p.q.Append(ctx, rows, p.opts.Now()); err != nil {
		return 0, err
	}
	appended := time.Now()
	seqs := make([]int64, len(rows))
	for i := range rows {
		seqs[i] = rows[i].Seq
	}
	if _, err := p.app.DeleteChanges(ctx, seqs); err != nil {
		return 0, err
	}
	p.q.Confirm()
	p.log.Debug("captured changes", "count", len(rows), "read", read.Sub(start), "append", appended.Sub(read),
		"delete", time.Since(appended))
	return len(rows), nil
}

// poke wakes Run for a round.
func (p *Pump) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run moves changes until ctx ends, then returns nil. On PostgreSQL it listens for the
// triggers' notifications and polls every SafetyPoll besides; elsewhere (or while the
// listening connection is down) it polls adaptively between PollMin and PollMax. Every
// SchemaInterval it reinstalls the triggers of tables whose columns changed.
func (p *Pump) Run(ctx context.Context) error {
	if p.app.Dialect().Name() == "postgres" {
		var wg sync.WaitGroup
		wg.Go(func() { p.listen(ctx) })
		defer wg.Wait()
	}
	schema := time.NewTicker(p.opts.SchemaInterval)
	defer schema.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	wait := p.opts.PollMin
	failing := false
	probe := schemaProbe{p: p}
	for {
		probe.check(ctx)
		n, err := p.Once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil:
			if !failing {
				p.log.Warn("capture round failed", "err", err)
			} else {
				p.log.Debug("capture round failed", "err", err)
			}
			failing = true
			wait = min(max(2*wait, 100*time.Millisecond), maxErrorWait)
		case n >= p.opts.BatchSize:
			if failing {
				p.log.Info("capture rounds succeed again")
			}
			failing = false
			wait = 0
		case n > 0:
			failing = false
			wait = p.opts.PollMin
		default:
			failing = false
			// After full rounds wait is 0: an empty round must start the back-off from
			// PollMin, not stay at 0 and spin.
			wait = min(max(2*wait, p.opts.PollMin), p.opts.PollMax)
			if p.listening.Load() {
				wait = p.opts.SafetyPoll
			}
		}
		if wait == 0 {
			select {
			case <-schema.C:
				p.checkSchema(ctx)
			default:
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-timer.C:
		case <-schema.C:
			p.checkSchema(ctx)
		}
	}
}

// schemaProbe runs schemaStamp every SchemaProbe and checks the schema when the stamp
// changed.
type schemaProbe struct {
	p     *Pump
	last  time.Time
	stamp string
	off   bool // the dialect needs no probe
}

func (s *schemaProbe) check(ctx context.Context) {
	if s.off || time.Since(s.last) < s.p.opts.SchemaProbe {
		return
	}
	s.last = time.Now()
	s.p.mu.Lock()
	tables := slices.Clone(s.p.want)
	s.p.mu.Unlock()
	stamp, ok, err := schemaStamp(ctx, s.p.app, tables)
	switch {
	case !ok:
		s.off = true
	case err != nil:
		s.p.log.Debug("schema probe failed", "err", err)
	case stamp != s.stamp:
		if s.stamp != "" {
			s.p.checkSchema(ctx)
		}
		s.stamp = stamp
	}
}

// checkSchema reinstalls the triggers of tables whose columns changed or whose triggers
// are gone, and retries tables that failed before.
func (p *Pump) checkSchema(ctx context.Context) {
	if err := p.syncTriggers(ctx, false); err != nil && ctx.Err() == nil {
		p.log.Debug("capture schema check", "err", err)
	}
}
