package agent_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/agent/appdb"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// appFixture is a real SQLite application database behind a real agent.
type appFixture struct {
	*testAgent
	dsn  string
	raw  *sql.DB
	view *sqldb.DB
	app  *appdb.DB
}

const postsDDL = `CREATE TABLE posts (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	ulid TEXT UNIQUE,
	slug TEXT UNIQUE,
	title TEXT,
	body TEXT,
	views INTEGER,
	price REAL,
	big INTEGER,
	published_at DATETIME,
	headline TEXT
)`

// Syncs of e2eState, all from platform 1 into platform 2's posts.
const (
	syncUpdate = 7  // posts -> posts, if_exists update
	syncSkip   = 9  // posts -> posts, if_exists skip
	syncError  = 10 // posts -> posts, if_exists error
	syncMapped = 11 // articles -> posts, name -> title only
	syncNoSuch = 12 // posts -> missing (no such table)
)

func e2eState(revision int64) protocol.State {
	st := testState(revision)
	base := protocol.Sync{Status: true, SourcePlatformID: sourceID, SourceModel: "posts", TargetPlatformID: selfID,
		TargetModel: "posts", SyncAllFields: true, Interval: 60}
	mk := func(id int64, edit func(*protocol.Sync)) protocol.Sync {
		s := base
		s.ID = id
		s.Title = fmt.Sprintf("sync %d", id)
		edit(&s)
		return s
	}
	st.Syncs = []protocol.Sync{
		mk(syncUpdate, func(s *protocol.Sync) { s.IfExists = protocol.IfExistsUpdate }),
		mk(syncSkip, func(s *protocol.Sync) { s.IfExists = protocol.IfExistsSkip }),
		mk(syncError, func(s *protocol.Sync) { s.IfExists = protocol.IfExistsError }),
		mk(syncMapped, func(s *protocol.Sync) {
			s.SourceModel = "articles"
			s.SyncAllFields = false
			s.FieldMappings = map[string]string{"ulid": "ulid", "name": "title"}
		}),
		mk(syncNoSuch, func(s *protocol.Sync) { s.TargetModel = "missing" }),
	}
	return st
}

func mustStartApp(t *testing.T) *appFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	dsn := "sqlite:" + path
	raw, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	if _, err := raw.Exec(postsDDL); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	app, err := appdb.Open(ctx, dsn, appdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close() })
	view, err := sqldb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = view.Close() })
	ta := mustStartAgent(t, func(o *agent.Options) {
		o.Applier = app
		o.Models = app
	})
	ta.enroll()
	ta.putState(e2eState(1))
	return &appFixture{testAgent: ta, dsn: dsn, raw: raw, view: view, app: app}
}

// row reads a posts row by ulid in sqldb's canonical form, or nil.
func (f *appFixture) row(t *testing.T, ulid string) map[string]any {
	t.Helper()
	r, found, err := f.view.Get(context.Background(), "posts", "ulid", ulid)
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		return nil
	}
	return r
}

func (f *appFixture) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := f.raw.QueryRow("SELECT COUNT(*) FROM posts").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// deliverAndWait delivers a batch, expects 202, and waits until its sync has applied it.
func (f *appFixture) deliverAndWait(t *testing.T, b protocol.Batch) {
	t.Helper()
	if res := f.deliver(sourceID, b); res.Status != http.StatusAccepted {
		t.Fatalf("deliver %s = %d %s", b.BatchID, res.Status, res.Body)
	}
	f.waitDone(t, b.BatchID)
}

// waitDone waits until a stored batch is no longer pending.
func (f *appFixture) waitDone(t *testing.T, batchID string) {
	t.Helper()
	waitFor(t, batchID+" done", func() bool {
		b, err := f.store.LookupBatch(context.Background(), batchID)
		return err == nil && b.Status != "pending"
	})
}

func change(seq int64, event, ulid string, data map[string]any) protocol.Change {
	return protocol.Change{Seq: seq, EventType: event, Model: "posts", Key: protocol.Key{Field: "ulid", Value: ulid},
		Data: data, OriginPlatformID: sourceID, ChangedAt: "2026-11-26T12:00:00.123Z"}
}

func batchOf(id string, syncID int64, changes ...protocol.Change) protocol.Batch {
	return protocol.Batch{BatchID: id, SourcePlatformID: sourceID, SyncID: syncID, Changes: changes}
}

// decoded turns a value into what it is after a JSON round trip with UseNumber.
func num(s string) json.Number { return json.Number(s) }

func TestEndToEnd_ValuesRoundTrip(t *testing.T) {
	f := mustStartApp(t)
	long := strings.Repeat("Lorem ipsum ü 日本 🎉 ", 100<<10/24)
	data := map[string]any{
		"id": num("987654"), "ulid": "01HZVALUES", "slug": "grüße", "title": "Grüße aus 日本 🎉 \"quoted\" 'single' \\ back",
		"body": long, "views": num("42"), "price": num("3.25"), "big": num("9007199254740993"),
		"published_at": "2026-11-26T12:00:00.123Z", "headline": nil,
	}
	f.deliverAndWait(t, batchOf("values", syncUpdate, change(1, protocol.EventCreated, "01HZVALUES", data)))

	got := f.row(t, "01HZVALUES")
	if got == nil {
		t.Fatal("row not applied")
	}
	if got["id"] == num("987654") || fmt.Sprint(got["id"]) == "987654" {
		t.Fatalf("the source id was copied: %v", got["id"])
	}
	for _, col := range []string{"ulid", "slug", "title", "body", "views", "price", "big"} {
		if fmt.Sprint(got[col]) != fmt.Sprint(data[col]) {
			t.Errorf("%s = %.80v, want %.80v", col, got[col], data[col])
		}
	}
	if got["headline"] != nil {
		t.Errorf("headline = %v, want NULL", got["headline"])
	}
	pub, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got["published_at"]))
	if want, _ := time.Parse(time.RFC3339Nano, "2026-11-26T12:00:00.123Z"); err != nil || !pub.Equal(want) {
		t.Errorf("published_at = %v, want %v", got["published_at"], want)
	}
	if len(fmt.Sprint(got["body"])) < 100<<10-100 {
		t.Errorf("body is %d bytes", len(fmt.Sprint(got["body"])))
	}

	// An update replaces values, NULL included.
	upd := map[string]any{"ulid": "01HZVALUES", "title": nil, "views": num("43")}
	f.deliverAndWait(t, batchOf("values-2", syncUpdate, change(2, protocol.EventUpdated, "01HZVALUES", upd)))
	got = f.row(t, "01HZVALUES")
	if got["title"] != nil || fmt.Sprint(got["views"]) != "43" || fmt.Sprint(got["slug"]) != "grüße" {
		t.Fatalf("after update: title %v views %v slug %v", got["title"], got["views"], got["slug"])
	}
	if st := f.syncStatus(syncUpdate); st.Applied != 2 || st.HasErrors || st.Pending != 0 || st.LastSync == nil {
		t.Fatalf("status = %+v", st)
	}
}

func TestEndToEnd_Policies(t *testing.T) {
	f := mustStartApp(t)
	if _, err := f.raw.Exec(`INSERT INTO posts (ulid, title, views) VALUES ('01HZLOCAL', 'local title', 1)`); err != nil {
		t.Fatal(err)
	}

	t.Run("skip keeps an existing row and inserts a new one", func(t *testing.T) {
		f.deliverAndWait(t, batchOf("skip", syncSkip,
			change(1, protocol.EventUpdated, "01HZLOCAL", map[string]any{"ulid": "01HZLOCAL", "title": "remote"}),
			change(2, protocol.EventCreated, "01HZSKIPNEW", map[string]any{"ulid": "01HZSKIPNEW", "title": "new"}),
		))
		if got := f.row(t, "01HZLOCAL")["title"]; got != "local title" {
			t.Fatalf("skip overwrote the row: %v", got)
		}
		if f.row(t, "01HZSKIPNEW") == nil {
			t.Fatal("skip did not insert the new row")
		}
	})

	t.Run("error fails the whole batch into the dead letters", func(t *testing.T) {
		before := f.count(t)
		if res := f.deliver(sourceID, batchOf("error", syncError,
			change(1, protocol.EventCreated, "01HZERRNEW", map[string]any{"ulid": "01HZERRNEW", "title": "new"}),
			change(2, protocol.EventUpdated, "01HZLOCAL", map[string]any{"ulid": "01HZLOCAL", "title": "remote"}),
		)); res.Status != http.StatusAccepted {
			t.Fatalf("deliver = %d %s", res.Status, res.Body)
		}
		f.waitDone(t, "error")
		if f.count(t) != before || f.row(t, "01HZERRNEW") != nil || f.row(t, "01HZLOCAL")["title"] != "local title" {
			t.Fatal("a failed batch was applied in part")
		}
		st := f.syncStatus(syncError)
		if !st.HasErrors || st.ErrorMessage == nil || !strings.Contains(*st.ErrorMessage, "exists") || st.Failed != 2 {
			t.Fatalf("status = %+v", st)
		}
		if other := f.syncStatus(syncUpdate); other.HasErrors {
			t.Fatalf("another sync reports errors: %+v", other)
		}
	})

	t.Run("update overwrites", func(t *testing.T) {
		f.deliverAndWait(t, batchOf("update", syncUpdate,
			change(1, protocol.EventUpdated, "01HZLOCAL", map[string]any{"ulid": "01HZLOCAL", "title": "remote"})))
		if got := f.row(t, "01HZLOCAL")["title"]; got != "remote" {
			t.Fatalf("title = %v", got)
		}
	})

	t.Run("mapped fields", func(t *testing.T) {
		c := change(1, protocol.EventCreated, "01HZMAPPED", map[string]any{"ulid": "01HZMAPPED", "name": "Mapped name",
			"title": "not synced", "password": "not synced either"})
		c.Model = "articles"
		f.deliverAndWait(t, batchOf("mapped", syncMapped, c))
		got := f.row(t, "01HZMAPPED")
		if got == nil || got["title"] != "Mapped name" || got["body"] != nil {
			t.Fatalf("mapped row = %v", got)
		}
	})

	t.Run("delete and should_delete", func(t *testing.T) {
		f.deliverAndWait(t, batchOf("seed-delete", syncUpdate,
			change(1, protocol.EventCreated, "01HZDEL1", map[string]any{"ulid": "01HZDEL1", "title": "a"}),
			change(2, protocol.EventCreated, "01HZDEL2", map[string]any{"ulid": "01HZDEL2", "title": "b"}),
		))
		gone := change(3, protocol.EventUpdated, "01HZDEL2", map[string]any{"ulid": "01HZDEL2", "title": "b2"})
		gone.ShouldDelete = true
		f.deliverAndWait(t, batchOf("delete", syncUpdate, change(2, protocol.EventDeleted, "01HZDEL1", nil), gone,
			change(4, protocol.EventDeleted, "01HZNEVERTHERE", nil)))
		if f.row(t, "01HZDEL1") != nil || f.row(t, "01HZDEL2") != nil {
			t.Fatal("rows not deleted")
		}
		if f.row(t, "01HZLOCAL") == nil {
			t.Fatal("an unrelated row was deleted")
		}
	})
}

func TestEndToEnd_DuplicatesAreNotReapplied(t *testing.T) {
	f := mustStartApp(t)
	b := batchOf("dup", syncUpdate, change(1, protocol.EventCreated, "01HZDUP", map[string]any{"ulid": "01HZDUP", "title": "remote"}))
	f.deliverAndWait(t, b)
	// A local edit after the apply must survive redeliveries of the same batch.
	if _, err := f.raw.Exec(`UPDATE posts SET title = 'edited here' WHERE ulid = '01HZDUP'`); err != nil {
		t.Fatal(err)
	}
	if res := f.deliver(sourceID, b); res.Status != http.StatusOK || string(res.Body) != `{"status":"duplicate"}`+"\n" {
		t.Fatalf("redelivery = %d %s", res.Status, res.Body)
	}
	f.restart()
	if res := f.deliver(sourceID, b); res.Status != http.StatusOK || string(res.Body) != `{"status":"duplicate"}`+"\n" {
		t.Fatalf("redelivery after restart = %d %s", res.Status, res.Body)
	}
	time.Sleep(50 * time.Millisecond)
	if got := f.row(t, "01HZDUP")["title"]; got != "edited here" {
		t.Fatalf("title = %v: the batch was applied again", got)
	}
	if st := f.syncStatus(syncUpdate); st.Applied != 1 {
		t.Fatalf("applied = %d, want 1", st.Applied)
	}
}

// TestEndToEnd_CrashBetweenApplyAndRecord covers the agent dying after the application
// database committed a batch and before the state recorded it: the batch is found pending
// again, the application database's marker makes the apply a no-op, and it is recorded once.
func TestEndToEnd_CrashBetweenApplyAndRecord(t *testing.T) {
	f := mustStartApp(t)
	b := batchOf("crash", syncError, change(1, protocol.EventCreated, "01HZCRASH", map[string]any{"ulid": "01HZCRASH", "title": "once"}))
	sync := e2eState(1).Syncs[2]
	if res, err := f.app.ApplyBatch(context.Background(), sync, &b); err != nil || res.AlreadyApplied {
		t.Fatalf("apply = %+v, %v", res, err)
	}
	f.deliverAndWait(t, b)
	st := f.syncStatus(syncError)
	if st.HasErrors || st.Applied != 1 || f.count(t) != 1 {
		t.Fatalf("status = %+v, %d rows", st, f.count(t))
	}
	runs, err := f.store.Runs(context.Background(), syncError, 5)
	if err != nil || len(runs) != 1 || runs[0].Outcome != "already_applied" {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
}

func TestEndToEnd_SchemaRefusals(t *testing.T) {
	f := mustStartApp(t)
	cases := []struct {
		name string
		b    protocol.Batch
		code protocol.Code
	}{
		{"unknown column", batchOf("r1", syncUpdate,
			change(1, protocol.EventCreated, "01HZR1", map[string]any{"ulid": "01HZR1", "nope": 1})), protocol.CodeUnknownColumn},
		{"column crafted as SQL", batchOf("r2", syncUpdate,
			change(1, protocol.EventCreated, "01HZR2", map[string]any{"ulid": "01HZR2",
				`title") VALUES ('x'); DROP TABLE posts; --`: "x"})), protocol.CodeUnknownColumn},
		{"key crafted as SQL", batchOf("r3", syncUpdate, protocol.Change{Seq: 1, EventType: protocol.EventDeleted,
			Model: "posts", Key: protocol.Key{Field: "ulid` = 1 OR 1=1; --", Value: "x"}}), protocol.CodeBadRequest},
		{"missing target table", batchOf("r4", syncNoSuch,
			change(1, protocol.EventCreated, "01HZR4", map[string]any{"ulid": "01HZR4"})), protocol.CodeUnknownModel},
		{"model the sync does not name", func() protocol.Batch {
			c := change(1, protocol.EventCreated, "01HZR5", map[string]any{"ulid": "01HZR5"})
			c.Model = "users"
			return batchOf("r5", syncUpdate, c)
		}(), protocol.CodeUnknownModel},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := f.deliver(sourceID, c.b)
			if res.errorCode() != c.code || res.Status != c.code.DefaultStatus() {
				t.Fatalf("= %d %s, want %s", res.Status, res.Body, c.code)
			}
			mustNotBeStored(t, f.testAgent, c.b.BatchID)
		})
	}
	if n := f.count(t); n != 0 {
		t.Fatalf("%d rows written by refused batches", n)
	}

	res := f.control(http.MethodGet, "/api/models", nil)
	var models protocol.ModelsResponse
	res.json(t, &models)
	if res.Status != http.StatusOK || len(models.Models) != 1 || models.Models[0].Name != "posts" || len(models.Models[0].Columns) != 10 {
		t.Fatalf("models = %d %s", res.Status, res.Body)
	}
}
