package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

const (
	testSyncToken     = "sync-token-0123456789abcdefghijklmnopqrstuvwxyz"
	testPlatformToken = "platform-token-0123456789abcdefghijklmnopqrstuv"
	selfID            = int64(2)
	sourceID          = int64(1)
	otherID           = int64(3)
)

// fakeApplier is a function-field fake of agent.Applier; with nil fields it accepts
// everything and records what it applied.
type fakeApplier struct {
	CheckBatchFunc func(ctx context.Context, s protocol.Sync, b *protocol.Batch) error
	ApplyBatchFunc func(ctx context.Context, s protocol.Sync, b *protocol.Batch) (agent.ApplyResult, error)

	mu      sync.Mutex
	applied []string
}

func (f *fakeApplier) CheckBatch(ctx context.Context, s protocol.Sync, b *protocol.Batch) error {
	if f.CheckBatchFunc != nil {
		return f.CheckBatchFunc(ctx, s, b)
	}
	return nil
}

func (f *fakeApplier) ApplyBatch(ctx context.Context, s protocol.Sync, b *protocol.Batch) (agent.ApplyResult, error) {
	var res agent.ApplyResult
	var err error
	if f.ApplyBatchFunc != nil {
		res, err = f.ApplyBatchFunc(ctx, s, b)
	}
	if err == nil {
		f.mu.Lock()
		f.applied = append(f.applied, b.BatchID)
		f.mu.Unlock()
	}
	return res, err
}

func (f *fakeApplier) Applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.applied...)
}

// fakeModels is a function-field fake of agent.ModelSource.
type fakeModels struct {
	ModelsFunc func(ctx context.Context) ([]protocol.Model, error)
}

func (f fakeModels) Models(ctx context.Context) ([]protocol.Model, error) {
	if f.ModelsFunc != nil {
		return f.ModelsFunc(ctx)
	}
	return []protocol.Model{{Name: "posts", Columns: []protocol.Column{{Name: "id", Type: "INTEGER", PrimaryKey: true}},
		Unique: [][]string{{"ulid"}}}}, nil
}

// testAgent is an agent served by a real HTTP server over a real state file.
type testAgent struct {
	t       testing.TB
	dir     string
	opts    agent.Options
	agent   *agent.Agent
	store   *state.Store
	srv     *httptest.Server
	applier *fakeApplier
	stopped bool
}

// mustStartAgent starts an agent in a fresh state directory; edit may change its options.
func mustStartAgent(tb testing.TB, edit func(*agent.Options)) *testAgent {
	tb.Helper()
	ta := &testAgent{t: tb, dir: tb.TempDir(), applier: &fakeApplier{}}
	ta.opts = agent.Options{
		SyncToken:      testSyncToken,
		Applier:        ta.applier,
		Models:         fakeModels{},
		TLSFingerprint: "sha256:test",
		Version:        "9.9.9-test",
		Retry:          agent.RetryPolicy{MaxAttempts: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
	}
	if edit != nil {
		edit(&ta.opts)
	}
	ta.start()
	tb.Cleanup(ta.stop)
	return ta
}

func (ta *testAgent) start() {
	ta.t.Helper()
	st, err := state.Open(context.Background(), ta.dir)
	if err != nil {
		ta.t.Fatal(err)
	}
	ta.store = st
	opts := ta.opts
	opts.Store = st
	a, err := agent.New(context.Background(), opts)
	if err != nil {
		ta.t.Fatal(err)
	}
	ta.agent = a
	ta.srv = httptest.NewServer(a.Handler())
	a.Start()
	ta.stopped = false
}

func (ta *testAgent) stop() {
	if ta.stopped {
		return
	}
	ta.stopped = true
	ta.srv.Close()
	ta.agent.Stop()
	_ = ta.store.Close()
}

// restart stops the agent and starts a new one over the same state directory.
func (ta *testAgent) restart() {
	ta.t.Helper()
	ta.stop()
	ta.start()
}

func ctlKey() []byte { return protocol.ControlKey(testPlatformToken, testSyncToken) }

func bootKey() []byte { return protocol.BootKey(testSyncToken) }

func pairKey(sender int64) []byte { return protocol.PairKey(ctlKey(), sender, selfID) }

type response struct {
	Status int
	Body   []byte
}

func (r response) json(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode %s: %v", r.Body, err)
	}
}

// errorCode returns the code of an error envelope, or "".
func (r response) errorCode() protocol.Code {
	var eb protocol.ErrorBody
	if json.Unmarshal(r.Body, &eb) != nil {
		return ""
	}
	return eb.Error.Code
}

func (ta *testAgent) do(req *http.Request) response {
	ta.t.Helper()
	res, err := ta.srv.Client().Do(req)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		ta.t.Fatal(err)
	}
	return response{Status: res.StatusCode, Body: b}
}

// control sends a control-plane request signed with key by signer.
func (ta *testAgent) controlWith(signer protocol.Signer, method, uri string, body []byte, key []byte) response {
	ta.t.Helper()
	req, err := http.NewRequest(method, ta.srv.URL+uri, bytes.NewReader(body))
	if err != nil {
		ta.t.Fatal(err)
	}
	signer.SignControl(method, uri, body, key).Set(req.Header)
	return ta.do(req)
}

func (ta *testAgent) control(method, uri string, body any) response {
	ta.t.Helper()
	return ta.controlWith(protocol.Signer{}, method, uri, mustJSON(ta.t, body), ctlKey())
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	switch v := v.(type) {
	case nil:
		return nil
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func testPlatform(id int64) protocol.Platform {
	names := map[int64]string{1: "shop", 2: "blog", 3: "wiki"}
	return protocol.Platform{ID: id, Name: names[id], Domain: names[id] + ".example", ShowInMenu: true, Order: id,
		AgentURL: "https://" + names[id] + ".example:7443"}
}

// enroll enrolls the agent as platform selfID.
func (ta *testAgent) enroll() {
	ta.t.Helper()
	body := mustJSON(ta.t, protocol.EnrollRequest{Platform: testPlatform(selfID), PlatformToken: testPlatformToken})
	res := ta.controlWith(protocol.Signer{}, http.MethodPost, "/api/enroll", body, bootKey())
	if res.Status != http.StatusOK {
		ta.t.Fatalf("enroll: %d %s", res.Status, res.Body)
	}
}

// testState is a desired state for platform selfID: sync 7 from sourceID (posts -> posts)
// and sync 8 from otherID (pages -> pages), both targeting selfID.
func testState(revision int64) protocol.State {
	self := testPlatform(selfID)
	return protocol.State{
		Revision:  revision,
		Platform:  protocol.PlatformRef{ID: self.ID, Name: self.Name, Domain: self.Domain, AgentURL: self.AgentURL},
		Platforms: []protocol.Platform{testPlatform(sourceID), self, testPlatform(otherID)},
		Syncs: []protocol.Sync{
			{ID: 7, Status: true, Title: "shop.example (posts) to blog.example (posts)", SourcePlatformID: sourceID,
				SourceModel: "posts", TargetPlatformID: selfID, TargetModel: "posts", IfExists: "update",
				SyncAllFields: true, Interval: 60},
			{ID: 8, Status: true, Title: "wiki.example (pages) to blog.example (pages)", SourcePlatformID: otherID,
				SourceModel: "pages", TargetPlatformID: selfID, TargetModel: "pages", IfExists: "update",
				SyncAllFields: true, Interval: 60},
		},
		Peers: []protocol.Peer{{PlatformID: otherID, URL: "https://wiki.example:7443", WebhookPath: "/sync-webhook",
			Key: protocol.EncodeKey(protocol.PairKey([]byte("k"), selfID, otherID)), TLSFingerprint: "sha256:abc"}},
	}
}

// putState puts st and fails the test unless it is accepted.
func (ta *testAgent) putState(st protocol.State) {
	ta.t.Helper()
	if res := ta.control(http.MethodPut, "/api/state", st); res.Status != http.StatusOK {
		ta.t.Fatalf("put state: %d %s", res.Status, res.Body)
	}
}

// mustReady enrolls the agent and puts testState(1).
func (ta *testAgent) mustReady() {
	ta.t.Helper()
	ta.enroll()
	ta.putState(testState(1))
}

func testBatch(id string, syncID, sender int64, seqs ...int64) protocol.Batch {
	model := "posts"
	if syncID == 8 {
		model = "pages"
	}
	b := protocol.Batch{BatchID: id, SourcePlatformID: sender, SyncID: syncID}
	for _, seq := range seqs {
		b.Changes = append(b.Changes, protocol.Change{
			Seq: seq, EventType: protocol.EventUpdated, Model: model,
			Key:              protocol.Key{Field: "ulid", Value: "01HZ" + protocol.FormatID(seq)},
			Data:             map[string]any{"ulid": "01HZ" + protocol.FormatID(seq), "title": "Hello"},
			OriginPlatformID: sender, ChangedAt: "2026-11-26T12:00:00.123Z",
		})
	}
	return b
}

// deliverRaw posts body as a data delivery with explicit headers.
func (ta *testAgent) deliverRaw(sender string, h protocol.Headers, body []byte) response {
	ta.t.Helper()
	req, err := http.NewRequest(http.MethodPost, ta.srv.URL+"/sync-webhook", bytes.NewReader(body))
	if err != nil {
		ta.t.Fatal(err)
	}
	h.Set(req.Header)
	if sender != "" {
		req.Header.Set(protocol.HeaderPlatform, sender)
	}
	req.Header.Set("Content-Type", "application/json")
	return ta.do(req)
}

// deliver signs and posts a batch as sender with K_pair(sender->self).
func (ta *testAgent) deliver(sender int64, b protocol.Batch) response {
	ta.t.Helper()
	body := mustJSON(ta.t, b)
	h := protocol.Signer{}.SignData(b.BatchID, body, pairKey(sender))
	return ta.deliverRaw(protocol.FormatID(sender), h, body)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// status fetches /api/status and returns the status of one sync.
func (ta *testAgent) syncStatus(id int64) protocol.SyncStatus {
	ta.t.Helper()
	res := ta.control(http.MethodGet, "/api/status", nil)
	if res.Status != http.StatusOK {
		ta.t.Fatalf("status: %d %s", res.Status, res.Body)
	}
	var st protocol.Status
	res.json(ta.t, &st)
	for _, s := range st.Syncs {
		if s.ID == id {
			return s
		}
	}
	ta.t.Fatalf("status has no sync %d: %s", id, res.Body)
	return protocol.SyncStatus{}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func ioNopCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
