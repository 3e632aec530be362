package capture_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/capture/capturetest"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

const self = 1

// stateFor returns a desired state with one enabled sync from self per model.
func stateFor(models ...string) protocol.State {
	st := protocol.State{Revision: 1, Platform: protocol.PlatformRef{ID: self}}
	for i, m := range models {
		st.Syncs = append(st.Syncs, protocol.Sync{ID: int64(10 + i), Status: true, SourcePlatformID: self,
			SourceModel: m, TargetPlatformID: 2, TargetModel: m})
	}
	return st
}

func mustPump(t *testing.T, app *sqldb.DB, opts capture.Options, models ...string) *capture.Pump {
	t.Helper()
	p, err := capture.New(context.Background(), app, capturetest.MustOpenState(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(context.Background(), stateFor(models...), self); err != nil {
		t.Fatal(err)
	}
	return p
}

// drain runs rounds until the outbox is empty and returns how many rows moved.
func drain(t *testing.T, p *capture.Pump) int {
	t.Helper()
	total := 0
	for {
		n, err := p.Once(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

type queued struct {
	ID     int64
	Op     string
	Image  map[string]any
	Origin int64
}

func queueRows(t *testing.T, q *capture.Queue, model string) []queued {
	t.Helper()
	ctx := context.Background()
	maxID, err := q.MaxID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []queued
	_, _, err = q.Scan(ctx, model, 0, maxID, -1, func(r *capture.Row) error {
		var img map[string]any
		if err := json.Unmarshal(r.Image, &img); err != nil {
			return fmt.Errorf("image of %d: %w", r.ID, err)
		}
		if r.ChangedAtMS < time.Now().Add(-time.Hour).UnixMilli() {
			return fmt.Errorf("row %d: changed_at %d is not about now", r.ID, r.ChangedAtMS)
		}
		out = append(out, queued{ID: r.ID, Op: r.Op, Image: img, Origin: r.OriginPlatformID})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func summary(rows []queued) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%s %v %v o%d", r.Op, r.Image["ulid"], r.Image["title"], r.Origin)
	}
	return out
}

func outboxLen(t *testing.T, app *sqldb.DB) int {
	t.Helper()
	rows, err := app.ReadChanges(context.Background(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return len(rows)
}

func TestPump_CapturesInOrder(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, app *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, app, "posts")
		p := mustPump(t, app, capture.Options{}, "posts")

		sqldbtest.MustExec(t, app, map[string]string{"": `INSERT INTO posts (ulid, title) VALUES ('u1', 'one');
INSERT INTO posts (ulid, title) VALUES ('u2', 'two');
UPDATE posts SET title = 'ONE' WHERE ulid = 'u1';
DELETE FROM posts WHERE ulid = 'u2';
UPDATE posts SET title = 'ONE' WHERE ulid = 'u1'`})
		// A write the agent applied for platform 5 keeps its origin.
		tx, err := app.SQL().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := app.SetOrigin(ctx, tx, 5); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO posts (ulid, title) VALUES ('u3', 'three')`); err != nil {
			t.Fatal(err)
		}
		if err := app.SetOrigin(ctx, tx, 0); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		sqldbtest.MustExec(t, app, map[string]string{"": `UPDATE posts SET title = 'THREE' WHERE ulid = 'u3'`})

		if n := drain(t, p); n != 6 {
			t.Fatalf("moved %d rows, want 6", n)
		}
		got := summary(queueRows(t, p.Queue(), "posts"))
		want := []string{"created u1 one o0", "created u2 two o0", "updated u1 ONE o0", "deleted u2 two o0",
			"created u3 three o5", "updated u3 THREE o0"}
		if !slices.Equal(got, want) {
			t.Errorf("queue:\n got %q\nwant %q", got, want)
		}
		if n := outboxLen(t, app); n != 0 {
			t.Errorf("outbox still holds %d rows", n)
		}
		// Values arrive in canonical form: the boolean column is a JSON boolean everywhere.
		for _, r := range queueRows(t, p.Queue(), "posts") {
			if _, ok := r.Image["published"].(bool); !ok {
				t.Errorf("published = %#v, want a bool", r.Image["published"])
			}
		}
	})
}

// TestPump_LateCommitNotLost commits a transaction that took a lower seq after one that
// took a higher seq was already moved: a seq cursor over the outbox would skip it.
func TestPump_LateCommitNotLost(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, app *sqldb.DB) {
		if app.Dialect().Name() == "sqlite" {
			t.Skip("SQLite has a single writer: seqs commit in order")
		}
		ctx := context.Background()
		sqldbtest.CreatePosts(t, app, "posts")
		p := mustPump(t, app, capture.Options{}, "posts")

		t1, err := app.SQL().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer t1.Rollback()
		if _, err := t1.ExecContext(ctx, `INSERT INTO posts (ulid, title) VALUES ('early', 'T1')`); err != nil {
			t.Fatal(err)
		}
		t2, err := app.SQL().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := t2.ExecContext(ctx, `INSERT INTO posts (ulid, title) VALUES ('late', 'T2')`); err != nil {
			t.Fatal(err)
		}
		if err := t2.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := drain(t, p); n != 1 {
			t.Fatalf("moved %d rows before T1 commits, want 1", n)
		}
		if err := t1.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := drain(t, p); n != 1 {
			t.Fatalf("moved %d rows after T1 commits, want 1", n)
		}
		got := summary(queueRows(t, p.Queue(), "posts"))
		want := []string{"created late T2 o0", "created early T1 o0"}
		if !slices.Equal(got, want) {
			t.Errorf("queue = %q, want %q (in visibility order)", got, want)
		}
	})
}

// TestPump_CrashBetweenCopyAndDelete copies outbox rows to the queue and "crashes" before
// deleting them from the outbox; a new Pump on the same state database must not queue
// them twice, even when a purge runs before it.
func TestPump_CrashBetweenCopyAndDelete(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, app *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, app, "posts")
		state := capturetest.MustOpenState(t)
		p1, err := capture.New(ctx, app, state, capture.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := p1.Apply(ctx, stateFor("posts"), self); err != nil {
			t.Fatal(err)
		}
		sqldbtest.MustExec(t, app, map[string]string{"": `INSERT INTO posts (ulid) VALUES ('a'), ('b'), ('c')`})
		rows, err := app.ReadChangesRaw(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p1.Queue().Append(ctx, rows, time.Now()); err != nil { // the copy, then the crash
			t.Fatal(err)
		}

		p2, err := capture.New(ctx, app, state, capture.Options{})
		if err != nil {
			t.Fatal(err)
		}
		maxID, err := p2.Queue().MaxID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Every sender is past the rows: a purge would delete them, but their originals are
		// still in the outbox, so the queue keeps them until the pump confirms.
		if n, err := p2.Queue().Purge(ctx, maxID); err != nil || n != 0 {
			t.Fatalf("purge of unconfirmed rows deleted %d, %v", n, err)
		}
		sqldbtest.MustExec(t, app, map[string]string{"": `INSERT INTO posts (ulid) VALUES ('d')`})
		if n := drain(t, p2); n != 1 {
			t.Errorf("moved %d rows after the restart, want 1 (d)", n)
		}
		got := summary(queueRows(t, p2.Queue(), "posts"))
		want := []string{"created a <nil> o0", "created b <nil> o0", "created c <nil> o0", "created d <nil> o0"}
		if !slices.Equal(got, want) {
			t.Errorf("queue = %q, want %q", got, want)
		}
		if n := outboxLen(t, app); n != 0 {
			t.Errorf("outbox still holds %d rows", n)
		}
		maxID, _ = p2.Queue().MaxID(ctx)
		if n, err := p2.Queue().Purge(ctx, maxID); err != nil || n != 4 {
			t.Errorf("purge after confirmation deleted %d, %v; want 4", n, err)
		}
	})
}

func TestPump_BoundedRounds(t *testing.T) {
	app := sqldbtest.MustOpenSQLite(t)
	sqldbtest.CreatePosts(t, app, "posts")
	p := mustPump(t, app, capture.Options{BatchSize: 2000}, "posts")
	var b strings.Builder
	b.WriteString("INSERT INTO posts (ulid) VALUES ")
	for i := range 5000 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "('u%d')", i)
	}
	sqldbtest.MustExec(t, app, map[string]string{"": b.String()})
	var rounds []int
	for {
		n, err := p.Once(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rounds = append(rounds, n)
		if n == 0 {
			break
		}
	}
	if !slices.Equal(rounds, []int{2000, 2000, 1000, 0}) {
		t.Errorf("rounds moved %v, want [2000 2000 1000 0]", rounds)
	}
}

func TestPump_Apply(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, app *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, app, "posts")
		sqldbtest.CreatePosts(t, app, "pages")
		p, err := capture.New(ctx, app, capturetest.MustOpenState(t), capture.Options{})
		if err != nil {
			t.Fatal(err)
		}
		installed := func() []string {
			t.Helper()
			tables, err := app.InstalledTriggers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return tables
		}
		apply := func(st protocol.State) {
			t.Helper()
			if err := p.Apply(ctx, st, self); err != nil {
				t.Fatal(err)
			}
		}

		apply(stateFor("posts", "pages", "posts"))
		if got := installed(); !slices.Equal(got, []string{"pages", "posts"}) {
			t.Errorf("after two syncs: triggers on %v", got)
		}
		apply(stateFor("pages"))
		if got := installed(); !slices.Equal(got, []string{"pages"}) {
			t.Errorf("after dropping posts: triggers on %v", got)
		}
		st := stateFor("pages", "posts")
		st.Syncs[0].Status = false       // pages disabled
		st.Syncs[1].SourcePlatformID = 2 // posts: this platform is the target
		st.Syncs[1].TargetPlatformID = self
		apply(st)
		if got := installed(); len(got) != 0 {
			t.Errorf("with no enabled source sync: triggers on %v", got)
		}

		err = p.Apply(ctx, stateFor("posts", "nope"), self)
		if err == nil || protocol.CodeOf(err) != protocol.CodeUnknownModel {
			t.Errorf("sync on a missing table: err = %v, want unknown_model", err)
		}
		if got := installed(); !slices.Equal(got, []string{"posts"}) {
			t.Errorf("a missing table stops the others: triggers on %v", got)
		}
		ms, err := p.ModelStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ms["nope"].Error == "" || ms["posts"].Error != "" {
			t.Errorf("model status = %+v", ms)
		}
	})
}

// TestPump_ColumnChange adds a column to a captured table while the Pump runs: its periodic
// schema check reinstalls the triggers, so the new column appears in the row images.
func TestPump_ColumnChange(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, app *sqldb.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sqldbtest.CreatePosts(t, app, "posts")
		p := mustPump(t, app, capture.Options{SchemaInterval: 50 * time.Millisecond}, "posts")
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()

		sqldbtest.MustExec(t, app, map[string]string{"": `ALTER TABLE posts ADD COLUMN extra VARCHAR(20)`})
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; ; i++ {
			sqldbtest.MustExec(t, app, map[string]string{"": fmt.Sprintf(`INSERT INTO posts (ulid, extra) VALUES ('x%d', 'new')`, i)})
			time.Sleep(100 * time.Millisecond)
			rows := queueRows(t, p.Queue(), "posts")
			if len(rows) > 0 && rows[len(rows)-1].Image["extra"] == "new" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the new column never reached the row images: %v", summary(rows))
			}
		}
	})
}

// TestPump_Run checks that Run moves changes promptly; on PostgreSQL with polling all but
// switched off, so that only the notifications can wake it.
func TestPump_Run(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, app *sqldb.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sqldbtest.CreatePosts(t, app, "posts")
		opts := capture.Options{}
		if app.Dialect().Name() == "postgres" {
			opts.SafetyPoll = time.Hour
			opts.PollMin, opts.PollMax = 500*time.Millisecond, 500*time.Millisecond
		}
		p := mustPump(t, app, opts, "posts")
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		time.Sleep(1200 * time.Millisecond) // on PostgreSQL: listening by now, idle wait an hour
		for i := range 3 {
			changed := p.Queue().Changed()
			start := time.Now()
			sqldbtest.MustExec(t, app, map[string]string{"": fmt.Sprintf(`INSERT INTO posts (ulid) VALUES ('r%d')`, i)})
			select {
			case <-changed:
				if d := time.Since(start); d > 400*time.Millisecond {
					t.Errorf("change %d took %v to reach the queue", i, d)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("change %d never reached the queue", i)
			}
		}
		if got := len(queueRows(t, p.Queue(), "posts")); got != 3 {
			t.Errorf("queue holds %d rows, want 3", got)
		}
	})
}

// TestPump_SchemaProbe changes a captured table's columns with the periodic schema check
// all but switched off: on SQLite and MySQL the probe notices within a moment and the
// triggers follow (an added column shows in the images; on MySQL, writes to a table that
// lost a column work again); PostgreSQL's triggers need no probe.
func TestPump_SchemaProbe(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, app *sqldb.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sqldbtest.CreatePosts(t, app, "posts")
		p := mustPump(t, app, capture.Options{SchemaInterval: time.Hour, SchemaProbe: 20 * time.Millisecond}, "posts")
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		time.Sleep(100 * time.Millisecond) // the probe's first stamp

		sqldbtest.MustExec(t, app, map[string]string{"": `ALTER TABLE posts ADD COLUMN extra VARCHAR(20)`})
		time.Sleep(300 * time.Millisecond)
		sqldbtest.MustExec(t, app, map[string]string{"": `INSERT INTO posts (ulid, extra) VALUES ('a1', 'new')`})
		waitQueue(t, p, func(rows []queued) bool { return len(rows) == 1 && rows[0].Image["extra"] == "new" })

		if app.Dialect().Name() != "mysql" {
			return // SQLite refuses to drop a column its triggers name; PostgreSQL needs nothing
		}
		sqldbtest.MustExec(t, app, map[string]string{"": `ALTER TABLE posts DROP COLUMN slug`})
		time.Sleep(300 * time.Millisecond)
		sqldbtest.MustExec(t, app, map[string]string{"": `INSERT INTO posts (ulid, extra) VALUES ('a2', 'after drop')`})
		waitQueue(t, p, func(rows []queued) bool {
			_, hasSlug := rows[len(rows)-1].Image["slug"]
			return len(rows) == 2 && !hasSlug
		})
	})
}

func waitQueue(t *testing.T, p *capture.Pump, ok func([]queued) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rows := queueRows(t, p.Queue(), "posts")
		if len(rows) > 0 && ok(rows) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue: %v", summary(rows))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
