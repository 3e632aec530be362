package apply_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/apply"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

const crafted = `x"; DROP TABLE posts; --`

// postsSync is a sync of posts from platform 1 to posts on platform 2, all fields.
var postsSync = protocol.Sync{
	ID: 7, Status: true, SourcePlatformID: 1, SourceModel: "posts", TargetPlatformID: 2,
	TargetModel: "posts", IfExists: protocol.IfExistsUpdate, SyncAllFields: true,
}

// mustBatch builds a batch the way the webhook receives it: through JSON and
// protocol.DecodeBatch, so numbers arrive as json.Number.
func mustBatch(t testing.TB, id string, changes ...map[string]any) *protocol.Batch {
	t.Helper()
	body, err := json.Marshal(map[string]any{"batch_id": id, "source_platform_id": 1, "sync_id": 7, "changes": changes})
	if err != nil {
		t.Fatal(err)
	}
	b, err := protocol.DecodeBatch(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func change(event, keyField, key string, data map[string]any) map[string]any {
	c := map[string]any{
		"seq": 1, "event_type": event, "model": "posts", "key": map[string]any{"field": keyField, "value": key},
		"should_delete": false, "origin_platform_id": 1, "changed_at": "2026-11-26T12:00:00.123Z",
	}
	if data != nil {
		c["data"] = data
	}
	return c
}

func created(ulid string, data map[string]any) map[string]any {
	d := map[string]any{"ulid": ulid}
	for k, v := range data {
		d[k] = v
	}
	return change(protocol.EventCreated, "ulid", ulid, d)
}

func mustApply(t *testing.T, a *apply.Applier, s protocol.Sync, b *protocol.Batch) apply.Result {
	t.Helper()
	res, err := a.ApplyBatch(context.Background(), s, b)
	if err != nil {
		t.Fatalf("apply %s: %v", b.BatchID, err)
	}
	return res
}

func mustGet(t *testing.T, db *sqldb.DB, table, key string, value any) map[string]any {
	t.Helper()
	row, ok, err := db.Get(context.Background(), table, key, value)
	if err != nil || !ok {
		t.Fatalf("get %s %s=%v: found %v, %v", table, key, value, ok, err)
	}
	return row
}

func countRows(t *testing.T, db *sqldb.DB, table string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM ` + db.Dialect().QuoteIdent(table)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func idColumn(db *sqldb.DB) string {
	return map[string]string{
		"sqlite":   "id INTEGER PRIMARY KEY AUTOINCREMENT",
		"postgres": "id BIGSERIAL PRIMARY KEY",
		"mysql":    "id BIGINT AUTO_INCREMENT PRIMARY KEY",
	}[db.Dialect().Name()]
}

func TestApplyBatch_RoundTrip(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		sqldbtest.CreatePosts(t, db, "posts")
		a := apply.New(db, apply.Config{})
		big := strings.Repeat("Ünïcødé ✓ 𝄞 ", 100*1024/20)
		res := mustApply(t, a, postsSync, mustBatch(t, "b1",
			created("01A", map[string]any{
				"id": 999, "slug": nil, "title": "Grüße 🌍 — 日本語 'q' \"d\" \\", "body": big,
				"views": int64(9223372036854775807), "price": "1234.50", "rating": 4.25, "published": true,
				"meta":         map[string]any{"k": []any{"v", 1, nil}},
				"published_at": "2026-11-26T13:00:00.123+01:00", "created_at": "2026-11-26 12:34:56",
			}),
			created("01B", map[string]any{"id": 1000, "views": int64(-9223372036854775808), "published": false}),
		))
		if res != (apply.Result{Inserted: 2}) {
			t.Errorf("result = %+v", res)
		}
		got := mustGet(t, db, "posts", "ulid", "01A")
		want := map[string]any{
			"id": json.Number("1"), "slug": nil, "title": "Grüße 🌍 — 日本語 'q' \"d\" \\",
			"views": json.Number("9223372036854775807"), "rating": json.Number("4.25"), "published": true,
			"meta":         map[string]any{"k": []any{"v", json.Number("1"), nil}},
			"published_at": "2026-11-26T12:00:00.123Z", "created_at": "2026-11-26T12:34:56Z",
		}
		for k, v := range want {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("%s = %#v, want %#v", k, got[k], v)
			}
		}
		if got["body"] != big {
			t.Errorf("body came back with %d bytes, want %d", len(got["body"].(string)), len(big))
		}
		if p := got["price"].(json.Number).String(); p != "1234.50" && p != "1234.5" {
			t.Errorf("price = %s", p)
		}
		b := mustGet(t, db, "posts", "ulid", "01B")
		if b["id"] != json.Number("2") || b["views"] != json.Number("-9223372036854775808") || b["published"] != false {
			t.Errorf("01B = %v", b)
		}

		res = mustApply(t, a, postsSync, mustBatch(t, "b2",
			change(protocol.EventUpdated, "ulid", "01A", map[string]any{"ulid": "01A", "id": 5, "title": "new"}),
			change(protocol.EventUpdated, "ulid", "01B", map[string]any{"ulid": "01B", "title": nil}),
		))
		if res != (apply.Result{Updated: 2}) {
			t.Errorf("update result = %+v", res)
		}
		got = mustGet(t, db, "posts", "ulid", "01A")
		if got["title"] != "new" || got["id"] != json.Number("1") || got["body"] != big {
			t.Errorf("after update: title %v id %v body %d bytes", got["title"], got["id"], len(got["body"].(string)))
		}
	})
}

func TestApplyBatch_AppliedOnce(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		sqldbtest.CreatePosts(t, db, "posts")
		a := apply.New(db, apply.Config{})
		b := mustBatch(t, "01JDBATCH", created("01A", map[string]any{"title": "remote"}))
		mustApply(t, a, postsSync, b)
		sqldbtest.MustExec(t, db, map[string]string{"": `UPDATE posts SET title = 'local edit'`})

		res := mustApply(t, a, postsSync, b)
		if res != (apply.Result{AlreadyApplied: true}) {
			t.Errorf("second apply = %+v", res)
		}
		if got := mustGet(t, db, "posts", "ulid", "01A")["title"]; got != "local edit" {
			t.Errorf("title = %v: the batch was applied again", got)
		}
		// The same batch id for another sync is another batch.
		other := postsSync
		other.ID = 8
		b.SyncID = 8
		if res := mustApply(t, a, other, b); res.AlreadyApplied || res.Updated != 1 {
			t.Errorf("other sync = %+v", res)
		}
	})
}

func TestApplyBatch_IfExists(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO posts (ulid, slug, title) VALUES ('01A', 'a', 'local')`})
		a := apply.New(db, apply.Config{})

		skip := postsSync
		skip.IfExists = protocol.IfExistsSkip
		res := mustApply(t, a, skip, mustBatch(t, "s1",
			created("01A", map[string]any{"title": "remote"}),
			created("01B", map[string]any{"title": "remote b"}),
		))
		if res != (apply.Result{Inserted: 1, Skipped: 1}) {
			t.Errorf("skip result = %+v", res)
		}
		if got := mustGet(t, db, "posts", "ulid", "01A")["title"]; got != "local" {
			t.Errorf("skip overwrote: %v", got)
		}
		// skip by a key without a unique index (slug)
		res = mustApply(t, a, skip, mustBatch(t, "s2",
			change(protocol.EventCreated, "slug", "a", map[string]any{"slug": "a", "ulid": "01Q", "title": "remote"}),
		))
		if res != (apply.Result{Skipped: 1}) {
			t.Errorf("skip by slug = %+v", res)
		}

		fail := postsSync
		fail.IfExists = protocol.IfExistsError
		b := mustBatch(t, "e1",
			created("01C", map[string]any{"title": "c"}),
			created("01A", map[string]any{"title": "remote"}),
		)
		_, err := a.ApplyBatch(ctx, fail, b)
		if protocol.CodeOf(err) != protocol.CodeConflict {
			t.Fatalf("error policy: got %v, want conflict", err)
		}
		if _, found, _ := db.Get(ctx, "posts", "ulid", "01C"); found {
			t.Error("error policy: 01C was written although the batch failed")
		}
		// The failed batch was not recorded: once the conflict is gone it applies.
		sqldbtest.MustExec(t, db, map[string]string{"": `DELETE FROM posts WHERE ulid = '01A'`})
		if res := mustApply(t, a, fail, b); res != (apply.Result{Inserted: 2}) {
			t.Errorf("retry = %+v", res)
		}
	})
}

func TestApplyBatch_FieldMappings(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.MustExec(t, db, map[string]string{"": `CREATE TABLE articles (` + idColumn(db) + `,
			uid VARCHAR(26) NOT NULL UNIQUE, heading VARCHAR(200), content TEXT, slug VARCHAR(100))`})
		s := postsSync
		s.TargetModel = "articles"
		s.SyncAllFields = false
		s.FieldMappings = map[string]string{"ulid": "uid", "title": "heading", "body": "content"}
		a := apply.New(db, apply.Config{})
		res := mustApply(t, a, s, mustBatch(t, "m1",
			created("01A", map[string]any{"id": 3, "title": "Hello", "body": "text", "slug": "not-mapped", "extra": "ignored"}),
		))
		if res != (apply.Result{Inserted: 1}) {
			t.Errorf("result = %+v", res)
		}
		got := mustGet(t, db, "articles", "uid", "01A")
		want := map[string]any{"id": json.Number("1"), "uid": "01A", "heading": "Hello", "content": "text", "slug": nil}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("row = %v, want %v", got, want)
		}
		res = mustApply(t, a, s, mustBatch(t, "m2",
			change(protocol.EventUpdated, "ulid", "01A", map[string]any{"ulid": "01A", "title": "Hello again"}),
			change(protocol.EventDeleted, "ulid", "01A", nil),
		))
		if res != (apply.Result{Updated: 1, Deleted: 1}) {
			t.Errorf("result = %+v", res)
		}
		if n := countRows(t, db, "articles"); n != 0 {
			t.Errorf("%d rows left", n)
		}

		bad := s
		bad.FieldMappings = map[string]string{"ulid": "uid", "title": crafted}
		if _, err := a.ApplyBatch(ctx, bad, mustBatch(t, "m3", created("01B", map[string]any{"title": "x"}))); protocol.CodeOf(err) != protocol.CodeUnknownColumn {
			t.Errorf("crafted mapping target: got %v", err)
		}
		twice := s
		twice.FieldMappings = map[string]string{"ulid": "uid", "title": "heading", "slug": "heading"}
		if _, err := a.ApplyBatch(ctx, twice, mustBatch(t, "m4", created("01B", map[string]any{"title": "x", "slug": "y"}))); protocol.CodeOf(err) != protocol.CodeBadRequest {
			t.Errorf("two fields on one column: got %v", err)
		}
	})
}

func TestApplyBatch_LocalIdentifierFields(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		sqldbtest.MustExec(t, db, map[string]string{"": `CREATE TABLE docs (` + idColumn(db) + `,
			uuid VARCHAR(36), ulid VARCHAR(26) NOT NULL UNIQUE, title VARCHAR(100))`})
		s := postsSync
		s.SourceModel, s.TargetModel = "docs", "docs"
		a := apply.New(db, apply.Config{})
		c := created("01A", map[string]any{"id": 41, "ID": 42, "uuid": "7d4c2f1e-0000-4000-8000-000000000001", "title": "t"})
		c["model"] = "docs"
		if res := mustApply(t, a, s, mustBatch(t, "l1", c)); res != (apply.Result{Inserted: 1}) {
			t.Errorf("result = %+v", res)
		}
		got := mustGet(t, db, "docs", "ulid", "01A")
		// id and ID are local and dropped (docs has no ID column: no unknown_column either);
		// uuid is also a unique identifier field, so it crosses platforms.
		want := map[string]any{"id": json.Number("1"), "uuid": "7d4c2f1e-0000-4000-8000-000000000001", "ulid": "01A", "title": "t"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("row = %v, want %v", got, want)
		}
		// Matched by uuid, a field of both lists: the key is never dropped.
		c = change(protocol.EventUpdated, "uuid", "7d4c2f1e-0000-4000-8000-000000000001", map[string]any{"uuid": "7d4c2f1e-0000-4000-8000-000000000001", "title": "by uuid"})
		c["model"] = "docs"
		if res := mustApply(t, a, s, mustBatch(t, "l2", c)); res != (apply.Result{Updated: 1}) {
			t.Errorf("result = %+v", res)
		}
		if got := mustGet(t, db, "docs", "ulid", "01A")["title"]; got != "by uuid" {
			t.Errorf("title = %v", got)
		}
	})
}

func TestApplyBatch_Deletes(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		sqldbtest.CreatePosts(t, db, "posts")
		a := apply.New(db, apply.Config{})
		mustApply(t, a, postsSync, mustBatch(t, "d0",
			created("01A", nil), created("01B", nil), created("01C", nil)))
		gone := change(protocol.EventUpdated, "ulid", "01B", map[string]any{"ulid": "01B", "title": "lost its relation"})
		gone["should_delete"] = true
		res := mustApply(t, a, postsSync, mustBatch(t, "d1",
			change(protocol.EventDeleted, "ulid", "01A", nil),
			gone,
			change(protocol.EventDeleted, "ulid", "01Z", nil), // not there: fine
		))
		if res != (apply.Result{Deleted: 2, Skipped: 1}) {
			t.Errorf("result = %+v", res)
		}
		if n := countRows(t, db, "posts"); n != 1 {
			t.Errorf("%d rows left, want 1", n)
		}
		// Delete by a key without a unique index.
		mustApply(t, a, postsSync, mustBatch(t, "d2", change(protocol.EventCreated, "slug", "s", map[string]any{"slug": "s", "ulid": "01S"})))
		if res := mustApply(t, a, postsSync, mustBatch(t, "d3", change(protocol.EventDeleted, "slug", "s", nil))); res != (apply.Result{Deleted: 1}) {
			t.Errorf("delete by slug = %+v", res)
		}
	})
}

func TestApplyBatch_KeyWithoutUniqueIndex(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		sqldbtest.CreatePosts(t, db, "posts")
		a := apply.New(db, apply.Config{})
		bySlug := func(id, title string) *protocol.Batch {
			return mustBatch(t, id, change(protocol.EventUpdated, "slug", "hello", map[string]any{"slug": "hello", "ulid": "01H", "title": title}))
		}
		if res := mustApply(t, a, postsSync, bySlug("k1", "one")); res != (apply.Result{Inserted: 1}) {
			t.Errorf("first = %+v", res)
		}
		if res := mustApply(t, a, postsSync, bySlug("k2", "two")); res != (apply.Result{Updated: 1}) {
			t.Errorf("second = %+v", res)
		}
		if res := mustApply(t, a, postsSync, bySlug("k3", "two")); res != (apply.Result{Updated: 1}) {
			t.Errorf("same values = %+v", res)
		}
		if n := countRows(t, db, "posts"); n != 1 {
			t.Errorf("%d rows, want 1", n)
		}
	})
}

func TestApplyBatch_Refused(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		a := apply.New(db, apply.Config{})
		good := created("01A", map[string]any{"title": "ok"})
		unknownTarget := postsSync
		unknownTarget.TargetModel = "nope"
		craftedTarget := postsSync
		craftedTarget.TargetModel = crafted
		otherModel := created("01B", nil)
		otherModel["model"] = "users"
		badIfExists := postsSync
		badIfExists.IfExists = "replace"
		for _, tc := range []struct {
			name string
			sync protocol.Sync
			b    *protocol.Batch
			want protocol.Code
		}{
			{"unknown target model", unknownTarget, mustBatch(t, "r1", good), protocol.CodeUnknownModel},
			{"crafted target model", craftedTarget, mustBatch(t, "r2", good), protocol.CodeUnknownModel},
			{"change of another model", postsSync, mustBatch(t, "r3", good, otherModel), protocol.CodeUnknownModel},
			{"extra source column", postsSync, mustBatch(t, "r4", good, created("01C", map[string]any{"subtitle": "x"})), protocol.CodeUnknownColumn},
			{"crafted column", postsSync, mustBatch(t, "r5", good, created("01C", map[string]any{crafted: "x"})), protocol.CodeUnknownColumn},
			{"key not an identifier", postsSync, mustBatch(t, "r6", good, change(protocol.EventCreated, "views", "1", map[string]any{"views": 1})), protocol.CodeBadRequest},
			{"key not on target", postsSync, mustBatch(t, "r7", good, change(protocol.EventDeleted, "uuid", "u", nil)), protocol.CodeUnknownColumn},
			{"bad datetime", postsSync, mustBatch(t, "r8", good, created("01C", map[string]any{"published_at": "soon"})), protocol.CodeBadRequest},
			{"if_exists", badIfExists, mustBatch(t, "r9", good), protocol.CodeBadRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.name != "bad datetime" {
					// A bad value is only found while writing: CheckBatch checks names, not values.
					if err := a.CheckBatch(ctx, tc.sync, tc.b); protocol.CodeOf(err) != tc.want {
						t.Errorf("CheckBatch: got %v, want %s", err, tc.want)
					}
				}
				if _, err := a.ApplyBatch(ctx, tc.sync, tc.b); protocol.CodeOf(err) != tc.want {
					t.Errorf("ApplyBatch: got %v, want %s", err, tc.want)
				}
				if n := countRows(t, db, "posts"); n != 0 {
					t.Errorf("%d rows written", n)
				}
			})
		}
		if err := a.CheckBatch(ctx, postsSync, mustBatch(t, "ok", good)); err != nil {
			t.Errorf("CheckBatch of a good batch: %v", err)
		}
		if n := countRows(t, db, "posts"); n != 0 {
			t.Errorf("CheckBatch wrote %d rows", n)
		}
	})
}

func TestApplyBatch_OriginMarked(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		// The target is also a source of another sync: its triggers capture our writes.
		if err := db.InstallTriggers(ctx, "posts"); err != nil {
			t.Fatal(err)
		}
		a := apply.New(db, apply.Config{})
		relayed := created("01C", nil)
		relayed["origin_platform_id"] = 3 // born on platform 3, relayed by platform 1
		unset := created("01D", nil)
		unset["origin_platform_id"] = 0 // unset: the sender is the origin
		mustApply(t, a, postsSync, mustBatch(t, "o1",
			created("01A", nil), created("01B", nil), relayed, unset,
			change(protocol.EventDeleted, "ulid", "01A", nil)))
		sqldbtest.MustExec(t, db, map[string]string{"": `UPDATE posts SET title = 'local' WHERE ulid = '01B'`})
		changes, err := db.ReadChanges(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, c := range changes {
			got = append(got, c.OriginPlatformID)
		}
		if want := []int64{1, 1, 3, 1, 1, 0}; !reflect.DeepEqual(got, want) {
			t.Errorf("origins = %v, want %v", got, want)
		}
	})
}

func TestApplyBatch_ColumnAddedOnTarget(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		sqldbtest.CreatePosts(t, db, "posts")
		a := apply.New(db, apply.Config{})
		mustApply(t, a, postsSync, mustBatch(t, "c1", created("01A", map[string]any{"title": "a"})))
		// A migration adds a column on both sides after the schema was cached.
		sqldbtest.MustExec(t, db, map[string]string{"": `ALTER TABLE posts ADD COLUMN subtitle VARCHAR(100)`})
		res := mustApply(t, a, postsSync, mustBatch(t, "c2", created("01B", map[string]any{"subtitle": "new column"})))
		if res != (apply.Result{Inserted: 1}) {
			t.Errorf("result = %+v", res)
		}
		if got := mustGet(t, db, "posts", "ulid", "01B")["subtitle"]; got != "new column" {
			t.Errorf("subtitle = %v", got)
		}
	})
}
