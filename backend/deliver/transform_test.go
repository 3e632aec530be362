package deliver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/deliver"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// change is a queued change with a row image of its own.
type change struct {
	model, op string
	img       map[string]any
}

// appendChanges appends changes, in one Append, as the Pump would.
func (e *env) appendChanges(cs ...change) {
	e.t.Helper()
	out := make([]sqldb.RawOutboxRow, len(cs))
	for i, c := range cs {
		e.seq++
		b, err := json.Marshal(c.img)
		if err != nil {
			e.t.Fatal(err)
		}
		out[i] = sqldb.RawOutboxRow{Seq: e.seq, Model: c.model, Op: c.op, Image: b, ChangedAt: time.Now().UTC()}
	}
	if _, err := e.q.Append(context.Background(), out, time.Now()); err != nil {
		e.t.Fatal(err)
	}
	e.q.Confirm()
}

func named(s string) *string { return &s }

// withSync is stateWith whose sync is adjusted by edit.
func withSync(peer protocol.Peer, edit func(*protocol.Sync)) protocol.State {
	st := stateWith(peer)
	edit(&st.Syncs[0])
	return st
}

// TestSender_Transformer runs a Go transformer over every change: it changes the data,
// drops some changes (they count as delivered), sees deletes (whose key is then looked up
// in its output), and fails on one change a few times, which holds back the changes
// after it until it succeeds.
func TestSender_Transformer(t *testing.T) {
	rc := newReceiver(t, false)
	var failures atomic.Int32
	reg := transform.NewRegistry()
	reg.Register("tag", func(json.RawMessage) (transform.Transformer, error) {
		return transform.Func(func(_ context.Context, c transform.Change) (transform.Change, bool, error) {
			u, _ := c.Data["ulid"].(string)
			switch {
			case strings.HasPrefix(u, "skip"):
				return c, false, nil
			case strings.HasPrefix(u, "boom") && failures.Add(1) <= 3:
				return c, false, errors.New("not yet")
			}
			if c.SyncID != syncID || c.TargetPlatformID != target || c.Model != "posts" || c.ChangedAt.IsZero() {
				return c, false, fmt.Errorf("change %+v", c)
			}
			c.Data["tag"] = c.Event
			c.Data["ulid"] = "t-" + u
			return c, true, nil
		}), nil
	})
	opts := fastOptions
	opts.Transformers = reg
	e := newEnv(t, opts)
	e.apply(withSync(rc.peer(), func(s *protocol.Sync) { s.UseTransformerClass = named("tag") }))
	e.appendRows(row{ulid: "a"}, row{ulid: "skip-1"}, row{ulid: "boom"}, row{ulid: "b", op: protocol.EventDeleted},
		row{ulid: "skip-2"})
	maxID, _ := e.q.MaxID(context.Background())
	waitFor(t, 10*time.Second, "the cursor to reach the end of the queue", func() bool {
		c, _ := e.cursor()
		return c == maxID
	})
	rc.check()
	var got []string
	for _, c := range rc.acceptedChanges() {
		got = append(got, fmt.Sprintf("%s %v %v", c.EventType, c.Key.Value, c.Data["tag"]))
	}
	want := []string{"created t-a created", "created t-boom created", "deleted t-b <nil>"}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	if failures.Load() != 4 {
		t.Errorf("the failing change was transformed %d times, want 4", failures.Load())
	}
	if st := e.status(); st.Sent != 3 || st.HasErrors {
		t.Errorf("status = %+v", st)
	}
}

// TestSender_TransformerDelay holds every change until its capture time plus the
// declarative transformer's delay, and keeps the order.
func TestSender_TransformerDelay(t *testing.T) {
	rc := newReceiver(t, false)
	e := newEnv(t, fastOptions)
	e.apply(withSync(rc.peer(), func(s *protocol.Sync) {
		s.UseTransformerClass = named("declarative")
		s.TransformerConfig = json.RawMessage(`{"delay": "400ms", "set": {"delayed": true}}`)
	}))
	start := time.Now()
	e.appendRows(row{ulid: "a"})
	time.Sleep(150 * time.Millisecond)
	e.appendRows(row{ulid: "b"})
	waitFor(t, 10*time.Second, "two changes", func() bool { return rc.changeCount() == 2 })
	rc.check()
	reqs := rc.snapshot()
	if first := reqs[0].At.Sub(start); first < 400*time.Millisecond {
		t.Errorf("the first change went out after %v, before its delay", first)
	}
	if last := reqs[len(reqs)-1].At.Sub(start); last < 550*time.Millisecond {
		t.Errorf("the second change went out after %v, before its delay", last)
	}
	for _, c := range rc.acceptedChanges() {
		if c.Data["delayed"] != true {
			t.Errorf("change %+v was not transformed", c)
		}
	}
}

// TestSender_TransformerBindings: a sync that names no transformer uses its model's
// binding; one naming an unknown transformer cannot deliver and says why.
func TestSender_TransformerBindings(t *testing.T) {
	rc := newReceiver(t, false)
	e := newEnv(t, fastOptions)
	cfg := deliver.Config{TransformerBindings: map[string]transform.Binding{
		"posts": {Transformer: "declarative", Config: json.RawMessage(`{"drop": ["body"], "set": {"bound": 1}}`)}}}
	if err := e.m.Apply(context.Background(), stateWith(rc.peer()), self, cfg); err != nil {
		t.Fatal(err)
	}
	e.appendRows(row{ulid: "a"})
	waitFor(t, 5*time.Second, "one change", func() bool { return rc.changeCount() == 1 })
	c := rc.acceptedChanges()[0]
	if _, has := c.Data["body"]; has || c.Data["bound"] != json.Number("1") {
		t.Errorf("data = %v", c.Data)
	}

	st := withSync(rc.peer(), func(s *protocol.Sync) { s.UseTransformerClass = named("nope") })
	if err := e.m.Apply(context.Background(), st, self, cfg); err != nil {
		t.Fatal(err)
	}
	if s := e.status(); !s.HasErrors || s.ErrorMessage == nil || !strings.Contains(*s.ErrorMessage, `"nope" is not registered`) {
		t.Errorf("status = %+v", s)
	}
	rc.check()
}

// fakeRecords is an application database's records: rows by local id, and their platform
// relations. While gate is open (not closed yet), every read waits.
type fakeRecords struct {
	gate      chan struct{}
	mu        sync.Mutex
	rows      map[string]map[string]any
	platforms map[string][]int64
	reads     int
}

func (f *fakeRecords) wait() {
	if f.gate != nil {
		<-f.gate
	}
}

func (f *fakeRecords) ID(_ context.Context, model string, image []byte) (string, bool, error) {
	f.wait()
	var row map[string]any
	dec := json.NewDecoder(strings.NewReader(string(image)))
	dec.UseNumber()
	if err := dec.Decode(&row); err != nil {
		return "", false, err
	}
	id, ok := capture.IDText(row["id"])
	return id, ok, nil
}

func (f *fakeRecords) Platforms(_ context.Context, model, id string) ([]int64, error) {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.platforms[id], nil
}

func (f *fakeRecords) Row(_ context.Context, model, id string) ([]byte, bool, error) {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	row, ok := f.rows[id]
	if !ok {
		return nil, false, nil
	}
	b, err := json.Marshal(row)
	return b, true, err
}

func (f *fakeRecords) IDByKey(_ context.Context, model, field string, value any) (string, bool, error) {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, row := range f.rows {
		if row[field] == value {
			return id, true, nil
		}
	}
	return "", false, nil
}

func post(id int, ulid string) map[string]any {
	return map[string]any{"id": id, "ulid": ulid, "title": "Post " + ulid}
}

// delivered describes the accepted changes, in order.
func delivered(rc *receiver) []string {
	var got []string
	for _, c := range rc.acceptedChanges() {
		got = append(got, fmt.Sprintf("%s %v delete=%v data=%v", c.EventType, c.Key.Value, c.ShouldDelete, c.Data != nil))
	}
	return got
}

// TestSender_PlatformRelations sends a record only to a target it relates to: others get
// a should_delete without data; a delete goes out whatever the relations; a model_platform
// change re-delivers its record (a created or deleted row only when it concerns the
// target, an update always), as it is then; a record that is gone sends nothing.
func TestSender_PlatformRelations(t *testing.T) {
	rc := newReceiver(t, false)
	recs := &fakeRecords{
		gate:      make(chan struct{}),
		rows:      map[string]map[string]any{"1": post(1, "p1"), "2": post(2, "p2"), "3": post(3, "p3")},
		platforms: map[string][]int64{"2": {3, target}, "3": {target, 3}},
	}
	opts := fastOptions
	opts.Records = recs
	e := newEnv(t, opts)
	e.apply(withSync(rc.peer(), func(s *protocol.Sync) { s.UsePlatformRelations = true }))
	rel := func(op, model string, id, platform int) change {
		return change{capture.RelationsTable, op,
			map[string]any{"id": 100 + id, "model_type": model, "model_id": id, "platform_id": platform}}
	}
	e.appendChanges(
		change{"posts", protocol.EventCreated, post(1, "p1")},
		change{"posts", protocol.EventCreated, post(2, "p2")},
		change{"posts", protocol.EventCreated, post(3, "p3")},
		change{"posts", protocol.EventDeleted, post(2, "p2")},
		rel(protocol.EventCreated, "posts", 2, target),
		rel(protocol.EventCreated, "posts", 3, 3),      // another platform
		rel(protocol.EventCreated, "pages", 1, target), // another model
		rel(protocol.EventDeleted, "posts", 1, target),
		rel(protocol.EventDeleted, "posts", 9, target), // a record that is gone
		rel(protocol.EventUpdated, "posts", 3, 4),      // maybe moved away from the target
	)
	close(recs.gate)
	waitFor(t, 10*time.Second, "7 changes", func() bool { return rc.changeCount() == 7 })
	maxID, _ := e.q.MaxID(context.Background())
	waitFor(t, 10*time.Second, "the cursor to reach the end of the queue", func() bool {
		c, _ := e.cursor()
		return c == maxID
	})
	rc.check()
	want := []string{
		"deleted p1 delete=true data=false",
		"created p2 delete=false data=true",
		"created p3 delete=false data=true",
		"deleted p2 delete=false data=false",
		"updated p2 delete=false data=true",
		"deleted p1 delete=true data=false",
		"updated p3 delete=false data=true",
	}
	if got := delivered(rc); !slices.Equal(got, want) {
		t.Fatalf("delivered\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// metaTransformer adds a post's meta rows (from fakeRecords) and depends on post_meta.
type metaTransformer struct{ recs *fakeRecords }

func (m metaTransformer) Transform(_ context.Context, c transform.Change) (transform.Change, bool, error) {
	c.Data["meta"] = true
	return c, true, nil
}

func (m metaTransformer) Dependencies(model string) []deliver.Dependency {
	return []deliver.Dependency{{Table: model + "_meta", Column: "post_id"}}
}

// TestSender_TransformerDependencies re-delivers a record when a row of a table its
// transformer depends on changes: once however many of its rows changed together.
func TestSender_TransformerDependencies(t *testing.T) {
	rc := newReceiver(t, false)
	recs := &fakeRecords{gate: make(chan struct{}),
		rows: map[string]map[string]any{"1": post(1, "p1"), "2": post(2, "p2")}}
	reg := transform.NewRegistry()
	reg.Register("with_meta", func(json.RawMessage) (transform.Transformer, error) { return metaTransformer{recs}, nil })
	opts := fastOptions
	opts.Records, opts.Transformers = recs, reg
	e := newEnv(t, opts)
	e.apply(withSync(rc.peer(), func(s *protocol.Sync) { s.UseTransformerClass = named("with_meta") }))
	if got := e.m.Watched(); !slices.Equal(got, []string{"posts_meta"}) {
		t.Fatalf("watched = %v", got)
	}
	meta := func(op string, post int, key string) change {
		return change{"posts_meta", op, map[string]any{"id": 7, "post_id": post, "meta_key": key}}
	}
	e.appendChanges(
		change{"posts", protocol.EventCreated, post(1, "p1")},
		meta(protocol.EventCreated, 1, "a"),
		meta(protocol.EventCreated, 1, "b"),
		meta(protocol.EventUpdated, 2, "a"),
		meta(protocol.EventDeleted, 1, "c"),
		change{"posts", protocol.EventUpdated, post(1, "p1")},
		meta(protocol.EventCreated, 1, "d"),
	)
	close(recs.gate)
	waitFor(t, 10*time.Second, "5 changes", func() bool { return rc.changeCount() == 5 })
	time.Sleep(50 * time.Millisecond)
	rc.check()
	want := []string{
		"created p1 delete=false data=true",
		"updated p1 delete=false data=true",
		"updated p2 delete=false data=true",
		"updated p1 delete=false data=true",
		"updated p1 delete=false data=true",
	}
	if got := delivered(rc); !slices.Equal(got, want) {
		t.Fatalf("delivered\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, c := range rc.acceptedChanges() {
		if c.Data["meta"] != true {
			t.Errorf("change %+v was not transformed", c)
		}
	}
}

// TestSendRepairs_PlatformRelations: a repair of a record that does not belong to the
// target goes as a should_delete without data, one that does as it is.
func TestSendRepairs_PlatformRelations(t *testing.T) {
	rc := newReceiver(t, false)
	recs := &fakeRecords{rows: map[string]map[string]any{"1": post(1, "p1"), "2": post(2, "p2")},
		platforms: map[string][]int64{"1": {target}}}
	opts := fastOptions
	opts.Records = recs
	e := newEnv(t, opts)
	e.apply(withSync(rc.peer(), func(s *protocol.Sync) { s.UsePlatformRelations = true }))
	repair := func(ulid string) protocol.Change {
		return protocol.Change{EventType: protocol.EventUpdated, Model: "posts", Key: protocol.Key{Field: "ulid", Value: ulid},
			Data: map[string]any{"ulid": ulid, "title": "x"}, ChangedAt: "2026-11-26T12:00:00Z"}
	}
	if err := e.m.SendRepairs(context.Background(), syncID, []protocol.Change{repair("p1"), repair("p2"), repair("gone")}); err != nil {
		t.Fatal(err)
	}
	rc.check()
	want := []string{"updated p1 delete=false data=true", "deleted p2 delete=true data=false", "deleted gone delete=true data=false"}
	if got := delivered(rc); !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
}
