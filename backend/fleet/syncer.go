package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// FleetSource gives a consistent snapshot of the fleet.
type FleetSource interface {
	// Fleet returns the desired-state revision with every platform and sync, read in one
	// transaction (catalog.Store.Snapshot, converted).
	Fleet(ctx context.Context) (Fleet, error)
}

// Catalog is what Sync Platforms and token rotation need from the control center's
// catalog. *catalog.Store has PinFingerprint, MarkEnrolled, SetAcked and BumpRevision with
// these signatures; an adapter embedding it adds Fleet and RecordResult.
type Catalog interface {
	FleetSource
	// PinFingerprint records the fingerprint an agent presented: with none pinned it is
	// pinned (trust on first use, bumping the revision); a different one is kept as the
	// pending fingerprint for an admin to accept, and an error is returned.
	PinFingerprint(ctx context.Context, platformID int64, fingerprint string) error
	// MarkEnrolled records that the platform's agent is enrolled.
	MarkEnrolled(ctx context.Context, platformID int64) error
	// SetAcked records the desired-state revision the platform's agent has in force.
	SetAcked(ctx context.Context, platformID, revision int64) error
	// RecordResult stores one agent's result of a Sync Platforms run in the push history.
	RecordResult(ctx context.Context, r Result) error
	// BumpRevision raises the desired-state revision, for changes the catalog cannot see
	// (a rotated token changes the pair keys of the platform's peers).
	BumpRevision(ctx context.Context) (int64, error)
}

// Outcomes of one agent in a Sync Platforms run (the same words as catalog.PushOK,
// catalog.PushFailed and catalog.PushUnreachable).
const (
	OutcomeOK          = "ok"
	OutcomeFailed      = "failed"
	OutcomeUnreachable = "unreachable"
)

// Codes of failed results that do not come from the agent (those carry the agent's
// protocol code: conflict, unauthorized, already_enrolled, …).
const (
	CodeFingerprintChanged = "fingerprint_changed"
	CodeNotPinned          = "not_pinned"
	CodeMissingToken       = "missing_token"
	CodeBadResponse        = "bad_response"
	CodeCanceled           = "canceled"
	CodeInternal           = "internal"
)

// Phases reported by Progress.
const (
	PhasePin    = "pin"
	PhaseHealth = "health"
	PhaseEnroll = "enroll"
	PhasePush   = "push"
	PhaseDone   = "done"
)

// Progress reports one step of one agent during Sync Platforms. Done and Total count
// agents; Result is set when Phase is PhaseDone.
type Progress struct {
	PlatformID int64   `json:"platform_id"`
	Phase      string  `json:"phase"`
	Done       int     `json:"done"`
	Total      int     `json:"total"`
	Result     *Result `json:"result,omitempty"`
}

// Result is the outcome of Sync Platforms for one agent. Messages never hold a secret.
type Result struct {
	PlatformID int64  `json:"platform_id"`
	Name       string `json:"name"`
	URL        string `json:"url"`
	// Outcome is OutcomeOK, OutcomeFailed or OutcomeUnreachable.
	Outcome string `json:"outcome"`
	// Code is the agent's protocol error code, or one of this package's Code constants.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Revision is the desired-state revision pushed; AgentRevision the one the agent has
	// in force afterwards (on a conflict: the newer one it keeps), 0 when unknown.
	Revision      int64 `json:"revision"`
	AgentRevision int64 `json:"agent_revision"`
	// Enrolled is true when this run enrolled the agent.
	Enrolled bool `json:"enrolled"`
	// Pinned is the fingerprint pinned by this run (trust on first use), for the admin to
	// see; Fingerprint is the one an agent presented instead of the pinned one.
	Pinned      string `json:"pinned,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	DurationMS  int64  `json:"duration_ms"`
}

// Report is the outcome of one Sync Platforms run.
type Report struct {
	Revision    int64    `json:"revision"`
	Results     []Result `json:"results"`
	OK          int      `json:"ok"`
	Failed      int      `json:"failed"`
	Unreachable int      `json:"unreachable"`
	DurationMS  int64    `json:"duration_ms"`
}

// Defaults of a Sync Platforms run.
const (
	DefaultConcurrency  = 16
	DefaultAgentTimeout = 30 * time.Second
)

// SyncOptions tune one Sync Platforms run.
type SyncOptions struct {
	// Concurrency bounds how many agents are talked to at once (default 16).
	Concurrency int
	// AgentTimeout bounds the whole exchange with one agent (default 30 s).
	AgentTimeout time.Duration
	// PlatformIDs limits the run to these platforms; nil means every platform.
	PlatformIDs []int64
	// Progress, when set, is called for every step of every agent, one call at a time.
	Progress func(Progress)
}

// SyncerOptions configure a Syncer.
type SyncerOptions struct {
	// TrustOnFirstUse pins, during Sync Platforms, the fingerprint an https agent presents
	// when none is pinned yet, and shows it in the result. Without it such an agent fails
	// with CodeNotPinned until an admin pins the fingerprint Probe shows.
	TrustOnFirstUse bool
	// Client is the template of every agent client: Timeout, Retries, RetryWait and Signer
	// are used; URL, Fingerprint and tokens are filled in per agent.
	Client ClientOptions
	// Logger receives one line per agent and run; nil discards them. Tokens never appear.
	Logger *slog.Logger
}

// Syncer runs Sync Platforms and token rotations against the fleet of agents.
// Runs are serialised: a second call waits for the first to finish.
type Syncer struct {
	catalog Catalog
	secrets secrets.Store
	opts    SyncerOptions
	log     *slog.Logger
	pool    *clientPool
	// running is a one-slot semaphore serialising runs and rotations.
	running chan struct{}
}

// NewSyncer returns a Syncer over the catalog and the secret store.
func NewSyncer(c Catalog, s secrets.Store, opts SyncerOptions) *Syncer {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Syncer{
		catalog: c, secrets: s, opts: opts, log: log,
		pool:    newClientPool(opts.Client),
		running: make(chan struct{}, 1),
	}
}

// Close releases the idle connections of every agent client.
func (s *Syncer) Close() { s.pool.closeAll() }

func (s *Syncer) lock(ctx context.Context) error {
	select {
	case s.running <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Syncer) unlock() { <-s.running }

// SyncPlatforms brings every agent to the fleet's desired state: it enrolls each agent
// that is not enrolled yet (POST /api/enroll with K_boot), then PUTs the agent's desired
// state (DesiredState), all agents concurrently within opts.Concurrency, each within
// opts.AgentTimeout. Every agent gets a Result: ok, failed (with the agent's error code and
// message) or unreachable. It is idempotent: agents accept the revision in force again, so
// pressing twice is safe. An agent answering 409 conflict keeps a newer revision than the
// catalog's: its result is failed with code conflict and its revision in AgentRevision,
// since the state it keeps is not the one the catalog describes.
//
// Before pushing it finishes interrupted token rotations and, with TrustOnFirstUse, pins
// the fingerprints of agents that have none, then re-reads the fleet, so that every peer
// entry carries the keys and fingerprints in force. The error is for failures of the whole
// run (catalog or keyring unavailable, ctx done) and for results that could not be
// recorded; the report holds every result obtained.
func (s *Syncer) SyncPlatforms(ctx context.Context, opts SyncOptions) (Report, error) {
	start := time.Now()
	if err := s.lock(ctx); err != nil {
		return Report{}, err
	}
	defer s.unlock()
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.AgentTimeout <= 0 {
		opts.AgentTimeout = DefaultAgentTimeout
	}
	r := &run{s: s, opts: opts, early: map[int64]Result{}}
	if err := r.prepare(ctx); err != nil {
		return Report{}, err
	}

	results := make([]Result, len(r.targets))
	forEach(opts.Concurrency, len(r.targets), func(i int) {
		results[i] = r.syncOne(ctx, r.targets[i])
	})
	s.pool.retain(r.fleet)

	rep := Report{Revision: r.fleet.Revision, Results: results, DurationMS: time.Since(start).Milliseconds()}
	var errs []error
	for _, res := range results {
		switch res.Outcome {
		case OutcomeOK:
			rep.OK++
		case OutcomeUnreachable:
			rep.Unreachable++
		default:
			rep.Failed++
		}
	}
	errs = append(errs, r.recordErrs...)
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("sync platforms", "revision", rep.Revision, "ok", rep.OK, "failed", rep.Failed,
		"unreachable", rep.Unreachable, "duration_ms", rep.DurationMS)
	return rep, errors.Join(errs...)
}

// run is the state of one Sync Platforms run.
type run struct {
	s         *Syncer
	opts      SyncOptions
	fleet     Fleet
	syncToken string
	tokens    map[int64]string
	targets   []FleetPlatform
	// early holds results decided before the push phase (a failed pin).
	early map[int64]Result

	mu         sync.Mutex
	done       int
	total      int
	recordErrs []error
}

// prepare reads the sync token, the fleet and the platform tokens, finishes interrupted
// rotations and pins first-use fingerprints, and chooses the agents to push to.
func (r *run) prepare(ctx context.Context) error {
	s := r.s
	var err error
	r.syncToken, err = s.secrets.Get(ctx, secrets.SyncTokenKey)
	if err != nil {
		return fmt.Errorf("sync platforms: read the sync token: %w", err)
	}
	if err := protocol.CheckToken(r.syncToken); err != nil {
		return fmt.Errorf("sync platforms: sync token: %w", err)
	}
	if r.fleet, err = s.catalog.Fleet(ctx); err != nil {
		return fmt.Errorf("sync platforms: read the fleet: %w", err)
	}
	r.chooseTargets()
	changed, err := r.preflight(ctx)
	if err != nil {
		return err
	}
	if changed {
		if r.fleet, err = s.catalog.Fleet(ctx); err != nil {
			return fmt.Errorf("sync platforms: read the fleet: %w", err)
		}
	}
	if r.tokens, err = s.readTokens(ctx, r.fleet); err != nil {
		return fmt.Errorf("sync platforms: %w", err)
	}
	r.chooseTargets()
	return nil
}

// chooseTargets picks the platforms of the run: those with an agent URL, among
// opts.PlatformIDs when given, by id.
func (r *run) chooseTargets() {
	r.targets = r.targets[:0]
	for _, p := range r.fleet.Platforms {
		if p.AgentURL != "" && r.selected(p.ID) {
			r.targets = append(r.targets, p)
		}
	}
	slices.SortFunc(r.targets, func(a, b FleetPlatform) int { return cmp.Compare(a.ID, b.ID) })
	r.mu.Lock()
	r.total = len(r.targets)
	r.mu.Unlock()
}

// preflight finishes interrupted token rotations of every platform and, with
// TrustOnFirstUse, pins the fingerprints of unpinned https agents. It reports whether the
// catalog or the keyring changed.
func (r *run) preflight(ctx context.Context) (changed bool, err error) {
	var (
		mu   sync.Mutex
		errs []error
	)
	platforms := r.fleet.Platforms
	forEach(r.opts.Concurrency, len(platforms), func(i int) {
		p := platforms[i]
		promoted, err := r.s.finishRotation(ctx, p, r.syncToken)
		pinned := false
		if err == nil && r.s.opts.TrustOnFirstUse && r.selected(p.ID) && p.TLSFingerprint == "" &&
			strings.HasPrefix(p.AgentURL, "https://") {
			pinned = r.pin(ctx, p)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
		changed = changed || promoted || pinned
	})
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return changed, errors.Join(errs...)
}

func (r *run) selected(id int64) bool {
	return r.opts.PlatformIDs == nil || slices.Contains(r.opts.PlatformIDs, id)
}

// pin probes an unpinned https agent and pins the fingerprint it presents (trust on first
// use). A failure becomes the agent's result.
func (r *run) pin(ctx context.Context, p FleetPlatform) bool {
	r.progress(p.ID, PhasePin, nil)
	pctx, cancel := context.WithTimeout(ctx, r.opts.AgentTimeout)
	defer cancel()
	fp, _, err := Probe(pctx, p.AgentURL)
	if err == nil {
		err = r.s.catalog.PinFingerprint(ctx, p.ID, fp)
	}
	if err != nil {
		res := Result{PlatformID: p.ID, Name: p.Name, URL: p.AgentURL}
		r.s.fail(ctx, &res, err)
		r.mu.Lock()
		r.early[p.ID] = res
		r.mu.Unlock()
		return false
	}
	r.mu.Lock()
	r.early[p.ID] = Result{Pinned: fp}
	r.mu.Unlock()
	r.s.log.Info("pinned agent certificate on first use", "platform_id", p.ID, "fingerprint", fp)
	return true
}

// readTokens reads the token of every platform; a platform without one is left out.
func (s *Syncer) readTokens(ctx context.Context, f Fleet) (map[int64]string, error) {
	tokens := make(map[int64]string, len(f.Platforms))
	for _, p := range f.Platforms {
		t, err := s.secrets.Get(ctx, secrets.PlatformKey(p.ID))
		switch {
		case err == nil:
			tokens[p.ID] = t
		case errors.Is(err, secrets.ErrNotFound):
		default:
			return nil, fmt.Errorf("read the token of platform %d: %w", p.ID, err)
		}
	}
	return tokens, nil
}

// progress reports a step, one call at a time; PhaseDone counts the agent as done.
func (r *run) progress(id int64, phase string, res *Result) {
	if r.opts.Progress == nil && phase != PhaseDone {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if phase == PhaseDone {
		r.done++
	}
	if r.opts.Progress != nil {
		r.opts.Progress(Progress{PlatformID: id, Phase: phase, Done: r.done, Total: r.total, Result: res})
	}
}

// syncOne enrolls one agent if needed and pushes its desired state.
func (r *run) syncOne(ctx context.Context, p FleetPlatform) Result {
	start := time.Now()
	res := Result{PlatformID: p.ID, Name: p.Name, URL: p.AgentURL, Revision: r.fleet.Revision}
	r.push(ctx, p, &res)
	res.DurationMS = time.Since(start).Milliseconds()

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.s.catalog.RecordResult(rctx, res); err != nil {
		r.mu.Lock()
		r.recordErrs = append(r.recordErrs, fmt.Errorf("record the result of platform %d: %w", p.ID, err))
		r.mu.Unlock()
	}
	r.s.log.Info("push desired state", "platform_id", p.ID, "outcome", res.Outcome, "code", res.Code,
		"message", res.Message, "revision", res.Revision, "enrolled", res.Enrolled, "duration_ms", res.DurationMS)
	r.progress(p.ID, PhaseDone, &res)
	return res
}

// push fills res with the outcome of enrolling the agent of p if needed and putting its
// desired state.
func (r *run) push(ctx context.Context, p FleetPlatform, res *Result) {
	s := r.s
	r.mu.Lock()
	early, ok := r.early[p.ID]
	r.mu.Unlock()
	if ok && early.Outcome != "" {
		res.Outcome, res.Code, res.Message = early.Outcome, early.Code, early.Message
		res.Fingerprint = early.Fingerprint
		return
	}
	res.Pinned = early.Pinned
	if err := ctx.Err(); err != nil {
		s.fail(ctx, res, err)
		return
	}
	token := r.tokens[p.ID]
	if token == "" {
		s.fail(ctx, res, fmt.Errorf("the keyring holds no token for platform %d: %w", p.ID, ErrMissingToken))
		return
	}
	st, err := DesiredState(r.fleet, p.ID, r.syncToken, r.tokens)
	if err != nil {
		s.fail(ctx, res, err)
		return
	}
	c, err := s.pool.get(p, r.syncToken, token)
	if err != nil {
		s.fail(ctx, res, err)
		return
	}
	actx, cancel := context.WithTimeout(ctx, r.opts.AgentTimeout)
	defer cancel()

	r.progress(p.ID, PhaseHealth, nil)
	h, err := c.Health(actx)
	if err != nil {
		s.fail(ctx, res, err)
		return
	}
	switch {
	case !h.Enrolled:
		r.progress(p.ID, PhaseEnroll, nil)
		if _, err := c.Enroll(actx, p.Platform); err != nil {
			s.fail(ctx, res, err)
			return
		}
		res.Enrolled = true
	case h.PlatformID != nil && *h.PlatformID != p.ID:
		s.fail(ctx, res, protocol.Errorf(protocol.CodeAlreadyEnrolled,
			"the agent at %s is enrolled as platform %d, not %d", p.AgentURL, *h.PlatformID, p.ID))
		return
	}
	if !p.Enrolled || res.Enrolled {
		if err := s.catalog.MarkEnrolled(ctx, p.ID); err != nil {
			s.fail(ctx, res, fmt.Errorf("record the enrollment: %w", err))
			return
		}
	}

	r.progress(p.ID, PhasePush, nil)
	inForce, err := c.PutState(actx, st)
	if IsCode(err, protocol.CodeConflict) {
		s.fail(ctx, res, err)
		if cur, gerr := c.GetState(actx); gerr == nil {
			res.AgentRevision = cur.Revision
			res.Message = fmt.Sprintf("the agent keeps revision %d, newer than revision %d of the catalog",
				cur.Revision, st.Revision)
		}
		return
	}
	if err != nil {
		s.fail(ctx, res, err)
		return
	}
	res.Outcome, res.AgentRevision = OutcomeOK, inForce
	if err := s.catalog.SetAcked(ctx, p.ID, inForce); err != nil {
		r.mu.Lock()
		r.recordErrs = append(r.recordErrs, fmt.Errorf("record the revision of platform %d: %w", p.ID, err))
		r.mu.Unlock()
	}
}

// fail fills res from err. A changed fingerprint is also recorded in the catalog, as the
// pending fingerprint for an admin to accept.
func (s *Syncer) fail(ctx context.Context, res *Result, err error) {
	res.Outcome, res.Code, res.Message = describe(err)
	var fm *FingerprintMismatchError
	if errors.As(err, &fm) {
		res.Fingerprint = fm.Seen
		// The catalog answers a different fingerprint with its own "changed" error after
		// storing it as pending; there is nothing more to do with that answer.
		if perr := s.catalog.PinFingerprint(context.WithoutCancel(ctx), res.PlatformID, fm.Seen); perr != nil {
			s.log.Debug("record the changed fingerprint", "platform_id", res.PlatformID, "err", perr)
		}
	}
}

// describe turns an error of a call to an agent into an outcome (OutcomeFailed or
// OutcomeUnreachable), a code (the agent's protocol code or one of this package's Code
// constants; "" when unreachable) and a message fit to show an admin.
func describe(err error) (outcome, code, message string) {
	var (
		pe *protocol.Error
		fm *FingerprintMismatchError
	)
	switch {
	case errors.As(err, &fm):
		return OutcomeFailed, CodeFingerprintChanged, err.Error()
	case errors.As(err, &pe):
		return OutcomeFailed, string(pe.Code), pe.Message
	case IsUnreachable(err):
		return OutcomeUnreachable, "", err.Error()
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return OutcomeFailed, CodeCanceled, err.Error()
	case errors.Is(err, ErrNotPinned):
		return OutcomeFailed, CodeNotPinned,
			"the agent's TLS certificate is not pinned yet: confirm the fingerprint that Probe shows"
	case errors.Is(err, ErrMissingToken):
		return OutcomeFailed, CodeMissingToken, err.Error()
	case errors.Is(err, ErrBadResponse):
		return OutcomeFailed, CodeBadResponse, err.Error()
	default:
		return OutcomeFailed, CodeInternal, err.Error()
	}
}

// forEach calls fn(i) for every i in [0, n) on at most limit goroutines at once.
func forEach(limit, n int, fn func(i int)) {
	if n == 0 {
		return
	}
	limit = min(limit, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range limit {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
