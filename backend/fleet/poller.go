package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// DefaultPollInterval is the time between two polls when PollerOptions sets none.
const DefaultPollInterval = 15 * time.Second

// AgentStatus is what one poll saw of one agent.
type AgentStatus struct {
	PlatformID int64     `json:"platform_id"`
	At         time.Time `json:"at"`
	// Online is true when the agent answered GET /api/health.
	Online bool             `json:"online"`
	Health *protocol.Health `json:"health,omitempty"`
	// Status is the answer to GET /api/status; nil when the agent is not enrolled, is
	// offline, or refused the call (see Code and Error).
	Status *protocol.Status `json:"status,omitempty"`
	// Code and Error say why the status is missing: a protocol code, or one of this
	// package's Code constants; "" with an Error when the agent is unreachable.
	Code      string `json:"code,omitempty"`
	Error     string `json:"error,omitempty"`
	LatencyMS int64  `json:"latency_ms"`
}

// PollSnapshot is one round of polling every agent.
type PollSnapshot struct {
	At time.Time `json:"at"`
	// Revision is the desired-state revision of the fleet when the round started, to
	// compare with each agent's revision in force.
	Revision int64         `json:"revision"`
	Agents   []AgentStatus `json:"agents"`
}

// PollerOptions configure a Poller.
type PollerOptions struct {
	// Interval is the time between the starts of two rounds (default 15 s).
	Interval time.Duration
	// Concurrency bounds how many agents are polled at once (default 16).
	Concurrency int
	// Timeout bounds the polling of one agent (default 10 s).
	Timeout time.Duration
	// OnSnapshot receives every round's snapshot, from the Run goroutine.
	OnSnapshot func(PollSnapshot)
	// Client is the template of every agent client (see SyncerOptions.Client).
	Client ClientOptions
	// Logger receives failures to start a round; nil discards them.
	Logger *slog.Logger
}

// Poller polls the health and status of every agent in the background for the fleet view.
type Poller struct {
	fleet   FleetSource
	secrets secrets.Store
	opts    PollerOptions
	log     *slog.Logger
	pool    *clientPool
}

// NewPoller returns a poller over the fleet and the secret store.
func NewPoller(f FleetSource, s secrets.Store, opts PollerOptions) *Poller {
	if opts.Interval <= 0 {
		opts.Interval = DefaultPollInterval
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Poller{fleet: f, secrets: s, opts: opts, log: log, pool: newClientPool(opts.Client)}
}

// Run polls at once and then every Interval until ctx is done, handing each snapshot to
// OnSnapshot. A round that cannot start (catalog or keyring unavailable) is logged and
// skipped. It returns when ctx is done, after closing its connections.
func (p *Poller) Run(ctx context.Context) {
	defer p.pool.closeAll()
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for {
		snap, err := p.PollOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			p.log.Warn("poll agents", "err", err)
		case p.opts.OnSnapshot != nil:
			p.opts.OnSnapshot(snap)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PollOnce polls every agent once.
func (p *Poller) PollOnce(ctx context.Context) (PollSnapshot, error) {
	f, err := p.fleet.Fleet(ctx)
	if err != nil {
		return PollSnapshot{}, fmt.Errorf("poll: read the fleet: %w", err)
	}
	syncToken, err := p.secrets.Get(ctx, secrets.SyncTokenKey)
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return PollSnapshot{}, fmt.Errorf("poll: read the sync token: %w", err)
	}
	var platforms []FleetPlatform
	for _, pl := range f.Platforms {
		if pl.AgentURL != "" {
			platforms = append(platforms, pl)
		}
	}
	slices.SortFunc(platforms, func(a, b FleetPlatform) int { return cmp.Compare(a.ID, b.ID) })
	snap := PollSnapshot{At: time.Now(), Revision: f.Revision, Agents: make([]AgentStatus, len(platforms))}
	forEach(p.opts.Concurrency, len(platforms), func(i int) {
		snap.Agents[i] = p.pollOne(ctx, platforms[i], syncToken)
	})
	p.pool.retain(f)
	return snap, ctx.Err()
}

// pollOne asks one agent for its health and, once enrolled, its status.
func (p *Poller) pollOne(ctx context.Context, pl FleetPlatform, syncToken string) AgentStatus {
	start := time.Now()
	st := AgentStatus{PlatformID: pl.ID, At: start}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	done := func(err error) AgentStatus {
		if err != nil {
			_, st.Code, st.Error = describe(err)
		}
		st.LatencyMS = time.Since(start).Milliseconds()
		return st
	}
	token, err := p.secrets.Get(ctx, secrets.PlatformKey(pl.ID))
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return done(fmt.Errorf("read the token of platform %d: %w", pl.ID, err))
	}
	c, err := p.pool.get(pl, syncToken, token)
	if err != nil {
		return done(err)
	}
	h, err := c.Health(ctx)
	if err != nil {
		return done(err)
	}
	st.Online, st.Health = true, &h
	if !h.Enrolled {
		return done(protocol.Errorf(protocol.CodeNotEnrolled, "the agent is not enrolled yet"))
	}
	s, err := c.Status(ctx)
	if err != nil {
		return done(err)
	}
	st.Status = &s
	return done(nil)
}
