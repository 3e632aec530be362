package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// maxRetryAfter caps a peer's Retry-After.
const maxRetryAfter = 10 * time.Minute

// batch is one prepared delivery: the queue rows first..last of the sync's model. A batch
// without id sends nothing and only moves the cursor to last (the range held no change
// for the target).
type batch struct {
	id          string
	first, last int64
	body        *[]byte
	count       int   // changes in body
	keyless     int   // rows left out for want of a key
	scanned     int   // queue rows read into the batch
	lastScanned int64 // id of the last of them
	maxBytes    int   // the body is full once it is this long
	persisted   bool
	// heldAt is the queue id of the first row held back by the transformer's delay (0:
	// none), heldUntil when it is due.
	heldAt    int64
	heldUntil time.Time
}

// errBatchFull stops a Scan once a batch's body reached its size limit; errHeld at a row
// that the transformer's delay holds back.
var (
	errBatchFull = errors.New("batch full")
	errHeld      = errors.New("held back")
)

func (b *batch) release() {
	if b != nil && b.body != nil {
		putBody(b.body)
		b.body = nil
	}
}

// sender delivers one sync's changes, one batch at a time, preparing the next batch while
// the current one is in flight.
type sender struct {
	m      *Manager
	spec   spec
	key    []byte
	enc    *encoder
	signer protocol.Signer
	self   string
	log    *slog.Logger

	// models are the tables scanned: the sync's model, then the watched ones.
	models []string
	// watch maps a watched table to the column of its rows that holds the record's local
	// id ("" for RelationsTable).
	watch map[string]string
	t     transform.Transformer
	delay time.Duration
	// plain is set when rows go out as captured: no transformer, no relations, no watch.
	plain   bool
	scratch capture.Row
	// redelivered holds the records re-delivered since the last row of the model itself in
	// the current scan: a watched row naming one of them again adds nothing, since every
	// change it saw was committed before the scan began.
	redelivered map[string]bool

	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	errMsg   string // the last delivery failure, "" after a success
	failed   int64  // changes left out for want of a key
	skipNote string
}

func newSender(m *Manager, sp spec, t transform.Transformer) (*sender, error) {
	key, err := protocol.DecodeKey(sp.key)
	if err != nil {
		return nil, err
	}
	s := &sender{
		m:      m,
		spec:   sp,
		key:    key,
		enc:    newEncoder(sp.model, strings.Split(sp.fields, "\x00"), sp.self, sp.syncID, sp.target),
		signer: protocol.Signer{Now: m.opts.Now},
		self:   strconv.FormatInt(sp.self, 10),
		log:    m.log.With("sync_id", sp.syncID, "model", sp.model, "target", sp.target),
		done:   make(chan struct{}),
		models: []string{sp.model},
		watch:  sp.watches(),
		t:      t,
		delay:  transform.DelayOf(t),
	}
	for _, table := range slices.Sorted(maps.Keys(s.watch)) {
		s.models = append(s.models, table)
	}
	s.plain = t == nil && !sp.relations && len(s.watch) == 0
	return s, nil
}

func (s *sender) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	s.cancel = cancel
	go s.run(ctx)
}

// stop cancels the sender and waits until it has stopped.
func (s *sender) stop() {
	s.cancel()
	<-s.done
}

// health returns the failed count, the current delivery error and the note about rows
// left out.
func (s *sender) health() (failed int64, errMsg, skipNote string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed, s.errMsg, s.skipNote
}

func (s *sender) setError(msg string) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed = s.errMsg != msg
	s.errMsg = msg
	return changed
}

// run delivers until ctx ends, starting over from the state database after an error.
func (s *sender) run(ctx context.Context) {
	defer close(s.done)
	for attempt := 0; ; attempt++ {
		started := time.Now()
		err := s.loop(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			attempt = 0 // a failure after a long good run starts the back-off afresh
		}
		if s.setError(err.Error()) {
			s.log.Error("delivery interrupted", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.m.backoff(attempt)):
		}
	}
}

// loop loads the cursor and any in-flight batch, then prepares and delivers batches until
// ctx ends or the state database fails.
func (s *sender) loop(ctx context.Context) error {
	cur, inf, err := s.m.store.load(ctx, s.spec.syncID)
	if err != nil {
		return err
	}
	var pending *batch
	if inf != nil {
		if pending, err = s.rebuild(ctx, inf); err != nil {
			return err
		}
		s.log.Info("resending the batch that was in flight", "batch_id", inf.BatchID,
			"first_id", inf.First, "last_id", inf.Last)
	}
	from := cur.Cursor
	if pending != nil {
		from = pending.last
	}

	pctx, pcancel := context.WithCancel(ctx)
	prepared := make(chan *batch, 1)
	perr := make(chan error, 1)
	go func() { perr <- s.prepare(pctx, from, prepared) }()
	defer func() {
		pcancel()
		<-perr
		pending.release()
		select {
		case b := <-prepared:
			b.release()
		default:
		}
	}()

	for {
		if pending == nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err := <-perr:
				perr <- err // for the deferred wait
				return err
			case pending = <-prepared:
			}
		}
		if pending.id == "" {
			if err := s.m.store.advance(ctx, s.spec.syncID, pending.last, 0, nil, s.m.opts.Now()); err != nil {
				return err
			}
			s.noteSkipped(pending)
			pending = nil
			continue
		}
		if !pending.persisted {
			if err := s.m.store.setInflight(ctx, s.spec.syncID, pending.inflight(), s.m.opts.Now()); err != nil {
				return err
			}
			pending.persisted = true
		}
		if err := s.deliver(ctx, pending); err != nil {
			return err
		}

		// Acknowledged: advance the cursor and, in the same transaction, make the next
		// prepared batch (if one is ready) the one in flight.
		var next *batch
		select {
		case next = <-prepared:
		default:
		}
		cursor := pending.last
		if next != nil && next.id == "" {
			cursor = next.last
			s.noteSkipped(next)
			next = nil
		}
		var nf *inflight
		if next != nil {
			nf = next.inflight()
		}
		if err := s.m.store.advance(context.WithoutCancel(ctx), s.spec.syncID, cursor, pending.count, nf, s.m.opts.Now()); err != nil {
			next.release()
			return err
		}
		s.noteSkipped(pending)
		s.log.Debug("batch acknowledged", "batch_id", pending.id, "count", pending.count, "cursor", cursor)
		pending.release()
		pending = next
		if pending != nil {
			pending.persisted = true
		}
	}
}

func (b *batch) inflight() *inflight {
	return &inflight{BatchID: b.id, First: b.first, Last: b.last, Count: b.count}
}

// noteSkipped counts and reports the rows of a finished batch that had no key.
func (s *sender) noteSkipped(b *batch) {
	if b.keyless == 0 {
		return
	}
	s.mu.Lock()
	s.failed += int64(b.keyless)
	s.skipNote = fmt.Sprintf("%d changes of %s were not sent: they have none of the unique identifier fields (%s) with a string or number value",
		s.failed, s.spec.model, strings.ReplaceAll(s.spec.fields, "\x00", ", "))
	s.mu.Unlock()
	s.log.Error("changes without a unique identifier were not sent", "count", b.keyless,
		"first_id", b.first, "last_id", b.last)
}

// prepare builds batches after queue id `after` and hands them to out, in order, until ctx
// ends or the state database fails.
func (s *sender) prepare(ctx context.Context, after int64, out chan<- *batch) error {
	for {
		changed := s.m.q.Changed()
		b, due, err := s.build(ctx, after)
		if err != nil {
			return err
		}
		if b == nil && !due.IsZero() {
			// The next change is held back by the transformer's delay: rows captured
			// meanwhile are later still.
			t := time.NewTimer(max(due.Sub(s.m.opts.Now()), time.Millisecond))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
				continue
			}
		}
		if b == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
				continue
			}
		}
		select {
		case out <- b:
			after = b.last
		case <-ctx.Done():
			b.release()
			return nil
		}
	}
}

// build reads at most BatchSize rows of the model after queue id `after` (fewer when the
// body reaches MaxBatchBytes, or a row is held back by the transformer's delay) and
// encodes them; with fewer rows it lingers once for more. It returns nil when the queue
// holds nothing after `after`, with the time the first row held back is due when one is.
func (s *sender) build(ctx context.Context, after int64) (*batch, time.Time, error) {
	maxID, err := s.m.q.MaxID(ctx)
	if err != nil || maxID <= after {
		return nil, time.Time{}, err
	}
	limit := s.m.opts.BatchSize
	b := &batch{id: protocol.NewULID(), first: after + 1, body: getBody(), maxBytes: s.m.opts.MaxBatchBytes}
	*b.body = s.enc.begin(*b.body, b.id)
	full, err := b.scan(ctx, s, after, maxID, limit, true)
	if err != nil {
		b.release()
		return nil, time.Time{}, err
	}
	upto := maxID
	switch {
	case b.heldAt > 0:
		upto = b.heldAt - 1
	case full || b.scanned == limit:
		upto = b.lastScanned
	case b.count > 0 && s.m.opts.Linger > 0:
		changed := s.m.q.Changed()
		t := time.NewTimer(s.m.opts.Linger)
		select {
		case <-ctx.Done():
		case <-changed:
		case <-t.C:
		}
		t.Stop()
		if max2, err := s.m.q.MaxID(ctx); err == nil && max2 > maxID {
			before := b.scanned
			full, err := b.scan(ctx, s, maxID, max2, limit-before, true)
			if err != nil {
				b.release()
				return nil, time.Time{}, err
			}
			upto = max2
			switch {
			case b.heldAt > 0:
				upto = b.heldAt - 1
			case full || b.scanned-before == limit-before:
				upto = b.lastScanned
			}
		}
	}
	if upto <= after { // the first row is held back
		b.release()
		return nil, b.heldUntil, nil
	}
	b.last = upto
	s.finish(b)
	return b, time.Time{}, nil
}

// scan encodes at most limit rows of the model (and the tables it watches) with after <
// id <= upto into b, and reports whether it stopped because the body is full. With hold,
// it stops at the first row that the transformer's delay holds back (b.heldAt).
func (b *batch) scan(ctx context.Context, s *sender, after, upto int64, limit int, hold bool) (bool, error) {
	clear(s.redelivered)
	_, _, err := s.m.q.ScanModels(ctx, s.models, after, upto, limit, func(r *capture.Row) error {
		if hold && s.delay > 0 {
			if due := time.UnixMilli(r.ChangedAtMS).Add(s.delay); due.After(s.m.opts.Now()) {
				b.heldAt, b.heldUntil = r.ID, due
				return errHeld
			}
		}
		var o outcome
		if s.plain {
			*b.body, o = s.enc.add(*b.body, b.count, r)
		} else {
			out, shouldDelete, send, err := s.prepareRow(ctx, r)
			switch {
			case err != nil:
				return err
			case send:
				*b.body, o = s.enc.addAs(*b.body, b.count, out, shouldDelete)
			default:
				o = dropped
			}
		}
		switch o {
		case added:
			b.count++
		case keyless:
			b.keyless++
		}
		b.scanned++
		b.lastScanned = r.ID
		if b.maxBytes > 0 && len(*b.body) >= b.maxBytes {
			return errBatchFull
		}
		return nil
	})
	if errors.Is(err, errBatchFull) {
		return true, nil
	}
	if errors.Is(err, errHeld) {
		return false, nil
	}
	return false, err
}

// prepareRow turns a queue row into the change to send: a watched table's row into the
// current row of the record it names, a record that platform relations do not give to
// the target into a should_delete, and the row through the transformer. send is false
// for a change that is not sent at all: the transformer dropped it, or its record is gone.
func (s *sender) prepareRow(ctx context.Context, r *capture.Row) (out *capture.Row, shouldDelete, send bool, err error) {
	if r.OriginPlatformID == s.spec.target {
		return r, false, true, nil // an echo: the encoder leaves it out
	}
	out = r
	id := ""
	if r.Model != s.spec.model {
		var ok bool
		if id, ok = s.watchedID(r); !ok || s.redelivered[id] {
			return nil, false, false, nil
		}
		if s.redelivered == nil {
			s.redelivered = map[string]bool{}
		}
		s.redelivered[id] = true
		img, found, err := s.m.opts.Records.Row(ctx, s.spec.model, id)
		if err != nil {
			return nil, false, false, fmt.Errorf("re-deliver %s %s after a change of %s: %w", s.spec.model, id, r.Model, err)
		}
		if !found {
			return nil, false, false, nil // deleted since: its own delete went out
		}
		s.scratch = capture.Row{ID: r.ID, Model: s.spec.model, Op: protocol.EventUpdated, Image: img,
			ChangedAtMS: r.ChangedAtMS}
		out = &s.scratch
	} else {
		clear(s.redelivered)
	}
	if s.spec.relations && out.Op != protocol.EventDeleted {
		if id == "" {
			var found bool
			if id, found, err = s.m.opts.Records.ID(ctx, s.spec.model, out.Image); err != nil {
				return nil, false, false, fmt.Errorf("platform relations of change %d: %w", r.ID, err)
			}
			if !found {
				id = ""
			}
		}
		related := false
		if id != "" {
			platforms, err := s.m.opts.Records.Platforms(ctx, s.spec.model, id)
			if err != nil {
				return nil, false, false, fmt.Errorf("platform relations of %s %s: %w", s.spec.model, id, err)
			}
			related = slices.Contains(platforms, s.spec.target)
		}
		shouldDelete = !related
	}
	if s.t != nil {
		event := out.Op
		if shouldDelete {
			event = protocol.EventDeleted
		}
		c := transform.Change{SyncID: s.spec.syncID, TargetPlatformID: s.spec.target, Model: s.spec.model,
			Event: event, ChangedAt: time.UnixMilli(out.ChangedAtMS).UTC()}
		img, keep, err := transform.Image(ctx, s.t, c, out.Image)
		if err != nil {
			return nil, false, false, fmt.Errorf("transformer of sync %d, change %d: %w", s.spec.syncID, r.ID, err)
		}
		if !keep {
			return nil, false, false, nil
		}
		if out != &s.scratch {
			s.scratch = *out
			out = &s.scratch
		}
		out.Image = img
	}
	return out, shouldDelete, true, nil
}

// watchedID returns the local id of the record of the sync's model that a watched
// table's row names; ok is false when it names none, or (for a model_platform row that
// was created or deleted) concerns another platform than the target.
func (s *sender) watchedID(r *capture.Row) (string, bool) {
	col, watched := s.watch[r.Model]
	if !watched {
		return "", false
	}
	if r.Model == capture.RelationsTable && s.spec.relations {
		rel, ok := capture.RelationOf(r.Image)
		if !ok || rel.Model != s.spec.model {
			return "", false
		}
		// An update may have moved the row from the target to another platform: its old
		// platform is not in the image, so every update re-evaluates.
		if r.Op != protocol.EventUpdated && rel.Platform != s.spec.target {
			return "", false
		}
		return rel.ID, true
	}
	var row map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.Image))
	dec.UseNumber()
	if err := dec.Decode(&row); err != nil {
		return "", false
	}
	return capture.IDText(row[col])
}

// rebuild encodes the in-flight batch f again from the queue, under its id.
func (s *sender) rebuild(ctx context.Context, f *inflight) (*batch, error) {
	b := &batch{id: f.BatchID, first: f.First, last: f.Last, body: getBody(), persisted: true}
	*b.body = s.enc.begin(*b.body, b.id)
	if _, err := b.scan(ctx, s, f.First-1, f.Last, -1, false); err != nil {
		b.release()
		return nil, err
	}
	s.finish(b)
	return b, nil
}

// finish closes the body of a batch with changes, and turns one without into a
// cursor-only batch.
func (s *sender) finish(b *batch) {
	if b.count == 0 {
		b.release()
		b.id = ""
		return
	}
	*b.body = s.enc.end(*b.body)
}

// deliveryError is a failed attempt that reached the peer.
type deliveryError struct {
	status     int
	retryAfter time.Duration
	err        *protocol.Error
	url        string
}

func (e *deliveryError) Error() string {
	return fmt.Sprintf("POST %s: %d %s", e.url, e.status, e.err.Error())
}

// permanent reports whether the peer refused the batch itself: a 4xx other than 408, 409,
// 423 and 429. Such a batch is still retried, slowly, and reported: data is never skipped.
func (e *deliveryError) permanent() bool {
	switch e.status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusLocked, http.StatusTooManyRequests:
		return false
	}
	return e.status >= 400 && e.status < 500
}

// deliver POSTs b until the peer acknowledges it (nil) or ctx ends (ctx.Err()).
func (s *sender) deliver(ctx context.Context, b *batch) error {
	for attempt := 0; ; attempt++ {
		err := s.post(ctx, b)
		if err == nil {
			if s.setError("") && attempt > 0 {
				s.log.Info("delivery succeeds again", "batch_id", b.id)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := s.m.backoff(attempt)
		var de *deliveryError
		switch {
		case errors.As(err, &de) && de.permanent():
			wait = s.m.opts.BackoffMax
		case errors.As(err, &de) && de.retryAfter > 0 &&
			(de.status == http.StatusTooManyRequests || de.status == http.StatusServiceUnavailable):
			wait = de.retryAfter
		case errors.Is(err, ErrFingerprintMismatch):
			wait = s.m.opts.BackoffMax
		}
		if s.setError(err.Error()) {
			s.log.Warn("delivery failed; retrying", "batch_id", b.id, "attempt", attempt+1, "retry_in", wait, "err", err)
		} else {
			s.log.Debug("delivery failed; retrying", "batch_id", b.id, "attempt", attempt+1, "retry_in", wait, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// post sends b once, signed afresh, and returns nil when the peer answered 202 or 200.
func (s *sender) post(ctx context.Context, b *batch) error {
	ctx, cancel := context.WithTimeout(ctx, s.m.opts.RequestTimeout)
	defer cancel()
	body := *b.body
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.spec.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	s.signer.SignData(b.id, body, s.key).Set(req.Header)
	req.Header.Set(protocol.HeaderPlatform, s.self)
	resp, err := s.m.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", s.spec.url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection reusable
	if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK {
		return nil
	}
	return &deliveryError{status: resp.StatusCode, retryAfter: retryAfter(resp.Header.Get("Retry-After"), s.m.opts.Now()),
		err: protocol.DecodeError(resp.StatusCode, raw), url: s.spec.url}
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryAfter parses a Retry-After header (seconds or an HTTP date), capped at maxRetryAfter.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		d = time.Duration(max(secs, 0)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
