package deliver_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/capture/capturetest"
	"github.com/mooxsync/mooxsync/backend/deliver"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

const (
	self   = 1
	target = 2
	syncID = 7
)

// targetKey is K_ctl of the target platform in these tests.
var targetKey = protocol.ControlKey("target-platform-token-0123456789abcdef", "sync-token-0123456789abcdef0123456789")

func pairKey() []byte { return protocol.PairKey(targetKey, self, target) }

// request is one delivery the receiver saw.
type request struct {
	ID        string
	Timestamp string
	Body      []byte
	Batch     *protocol.Batch
	At        time.Time
}

// receiver is a target agent's webhook: it checks the signature with the pair key and the
// batch's shape, records what it got, and answers with respond (default: 202, or 200
// duplicate for a batch id it accepted before).
type receiver struct {
	t   testing.TB
	srv *httptest.Server
	// keep stores every request's body and batch (off for big runs).
	keep bool
	// light only verifies signatures and counts changes, without decoding the batches.
	light bool

	mu       sync.Mutex
	requests []request
	accepted map[string]bool
	changes  int // changes in accepted batches
	maxBatch int
	respond  func(r request, attempt int) (int, http.Header, string)
	attempts map[string]int
	errs     []string
}

func newReceiver(t testing.TB, tlsServer bool) *receiver {
	rc := &receiver{t: t, keep: true, accepted: map[string]bool{}, attempts: map[string]int{}}
	h := http.HandlerFunc(rc.serve)
	rc.srv = httptest.NewUnstartedServer(h)
	rc.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	if tlsServer {
		rc.srv.StartTLS()
	} else {
		rc.srv.Start()
	}
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) fail(format string, args ...any) {
	rc.mu.Lock()
	rc.errs = append(rc.errs, fmt.Sprintf(format, args...))
	rc.mu.Unlock()
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.fail("read body: %v", err)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != protocol.DefaultWebhookPath {
		rc.fail("request %s %s", r.Method, r.URL.Path)
	}
	if r.Header.Get(protocol.HeaderPlatform) != strconv.Itoa(self) {
		rc.fail("x-mooxsync-platform = %q", r.Header.Get(protocol.HeaderPlatform))
	}
	h := protocol.HeadersFrom(r.Header)
	if err := (protocol.Verifier{}).VerifyData(h, body, pairKey()); err != nil {
		rc.fail("signature: %v", err)
		protocol.WriteError(w, err)
		return
	}
	req := request{ID: h.ID, Timestamp: h.Timestamp, At: time.Now()}
	if rc.light {
		n := bytes.Count(body, []byte(`{"seq":`))
		rc.mu.Lock()
		rc.requests = append(rc.requests, req)
		rc.changes += n
		rc.maxBatch = max(rc.maxBatch, n)
		rc.mu.Unlock()
		protocol.WriteJSON(w, http.StatusAccepted, protocol.Accepted{Status: "accepted", BatchID: h.ID, Count: n})
		return
	}
	batch, err := protocol.DecodeBatch(body)
	if err != nil {
		rc.fail("batch %s: %v", h.ID, err)
		protocol.WriteError(w, err)
		return
	}
	if batch.BatchID != h.ID || batch.SourcePlatformID != self || batch.SyncID != syncID {
		rc.fail("batch header %s/%d/%d for webhook-id %s", batch.BatchID, batch.SourcePlatformID, batch.SyncID, h.ID)
	}
	if rc.keep {
		req.Body, req.Batch = body, batch
	}
	rc.mu.Lock()
	rc.requests = append(rc.requests, req)
	attempt := rc.attempts[h.ID]
	rc.attempts[h.ID]++
	respond := rc.respond
	rc.mu.Unlock()

	status, hdr, msg := http.StatusAccepted, http.Header(nil), ""
	if respond != nil {
		status, hdr, msg = respond(req, attempt)
	}
	for k, v := range hdr {
		w.Header()[k] = v
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch {
	case status == http.StatusAccepted && rc.accepted[h.ID]:
		status = http.StatusOK
		fallthrough
	case status == http.StatusOK:
		protocol.WriteJSON(w, status, protocol.Accepted{Status: "duplicate"})
	case status == http.StatusAccepted:
		rc.accepted[h.ID] = true
		rc.changes += len(batch.Changes)
		rc.maxBatch = max(rc.maxBatch, len(batch.Changes))
		protocol.WriteJSON(w, status, protocol.Accepted{Status: "accepted", BatchID: h.ID, Count: len(batch.Changes)})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, msg)
	}
}

func (rc *receiver) check() {
	rc.t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, e := range rc.errs {
		rc.t.Error("receiver: " + e)
	}
	rc.errs = nil
}

func (rc *receiver) snapshot() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.requests...)
}

// acceptedChanges returns the changes of the accepted batches, in the order they arrived.
func (rc *receiver) acceptedChanges() []protocol.Change {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []protocol.Change
	seen := map[string]bool{}
	for _, r := range rc.requests {
		if rc.accepted[r.ID] && !seen[r.ID] && r.Batch != nil {
			seen[r.ID] = true
			out = append(out, r.Batch.Changes...)
		}
	}
	return out
}

func (rc *receiver) changeCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.changes
}

// peer is the Peer entry for the receiver.
func (rc *receiver) peer() protocol.Peer {
	p := protocol.Peer{PlatformID: target, URL: rc.srv.URL, WebhookPath: protocol.DefaultWebhookPath,
		Key: protocol.EncodeKey(pairKey())}
	if rc.srv.TLS != nil {
		p.TLSFingerprint = protocol.Fingerprint(rc.srv.Certificate().Raw)
	}
	return p
}

// stateWith is a desired state with sync 7 (posts, from self to target) and the peer.
func stateWith(peer protocol.Peer) protocol.State {
	return protocol.State{
		Revision: 1,
		Platform: protocol.PlatformRef{ID: self},
		Syncs: []protocol.Sync{{ID: syncID, Status: true, SourcePlatformID: self, SourceModel: "posts",
			TargetPlatformID: target, TargetModel: "posts", IfExists: protocol.IfExistsUpdate, SyncAllFields: true}},
		Peers: []protocol.Peer{peer},
	}
}

// env is a state database with a capture queue and a Manager.
type env struct {
	t     *testing.T
	state *sql.DB
	q     *capture.Queue
	m     *deliver.Manager
	stop  func()
	seq   int64
}

var fastOptions = deliver.Options{BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond,
	PurgeInterval: 20 * time.Millisecond}

func newEnv(t *testing.T, opts deliver.Options) *env {
	t.Helper()
	e := &env{t: t, state: capturetest.MustOpenState(t)}
	e.start(opts)
	return e
}

// start opens the queue and a Manager on the env's state database (again, for a restart)
// and runs the Manager until the test ends or stop is called.
func (e *env) start(opts deliver.Options) {
	e.t.Helper()
	ctx := context.Background()
	q, err := capture.OpenQueue(ctx, e.state)
	if err != nil {
		e.t.Fatal(err)
	}
	if opts.Logger == nil && os.Getenv("DELIVER_DEBUG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m, err := deliver.NewManager(ctx, e.state, q, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(rctx); err != nil {
			e.t.Error(err)
		}
	}()
	var once sync.Once
	e.stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(e.stop)
	e.q, e.m = q, m
}

func (e *env) apply(st protocol.State) {
	e.t.Helper()
	if err := e.m.Apply(context.Background(), st, self, deliver.Config{}); err != nil {
		e.t.Fatal(err)
	}
}

// row is a change to append to the queue.
type row struct {
	model  string
	op     string
	ulid   string
	origin int64
}

// appendRows appends rows to the queue as the Pump would.
func (e *env) appendRows(rows ...row) {
	e.t.Helper()
	out := make([]sqldb.RawOutboxRow, len(rows))
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, r := range rows {
		e.seq++
		img := map[string]any{"id": json.Number(strconv.FormatInt(e.seq, 10)), "title": "Post " + r.ulid,
			"body":  "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
			"views": json.Number("42"), "published": true, "created_at": "2026-11-26T12:00:00.123Z"}
		if r.ulid != "" {
			img["ulid"] = r.ulid
		}
		op := r.op
		if op == "" {
			op = protocol.EventCreated
		}
		model := r.model
		if model == "" {
			model = "posts"
		}
		b, err := json.Marshal(img)
		if err != nil {
			e.t.Fatal(err)
		}
		out[i] = sqldb.RawOutboxRow{Seq: e.seq, Model: model, Op: op, Image: b, OriginPlatformID: r.origin, ChangedAt: now}
	}
	if _, err := e.q.Append(context.Background(), out, time.Now()); err != nil {
		e.t.Fatal(err)
	}
	e.q.Confirm()
}

// posts returns n local creations of posts with ulids prefix-0...
func posts(prefix string, n int) []row {
	out := make([]row, n)
	for i := range out {
		out[i] = row{ulid: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return out
}

func (e *env) cursor() (cursor int64, inflight string) {
	e.t.Helper()
	if err := e.state.QueryRow(`SELECT cursor FROM deliver_cursor WHERE sync_id = ?`, syncID).Scan(&cursor); err != nil {
		e.t.Fatal(err)
	}
	_ = e.state.QueryRow(`SELECT batch_id FROM deliver_inflight WHERE sync_id = ?`, syncID).Scan(&inflight)
	return cursor, inflight
}

func (e *env) status() protocol.SyncStatus {
	e.t.Helper()
	st, err := e.m.Status(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return st[syncID]
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
