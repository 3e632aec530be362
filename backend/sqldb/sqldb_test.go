package sqldb_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// crafted is a column (or table) name written to break out of quoting.
const crafted = `x"; DROP TABLE posts; --`

func TestOpen_Errors(t *testing.T) {
	ctx := context.Background()
	for _, dsn := range []string{"oracle://scott:tiger@db/orcl", "no-scheme-here", "sqlite:", "sqlite::memory:"} {
		if _, err := sqldb.Open(ctx, dsn); err == nil {
			t.Errorf("Open(%q): want an error", dsn)
		} else if strings.Contains(err.Error(), "tiger") {
			t.Errorf("Open(%q): error leaks the password: %v", dsn, err)
		}
	}
	_, err := sqldb.Open(ctx, "oracle://x")
	if err == nil || !strings.Contains(err.Error(), "unknown scheme") {
		t.Errorf("unknown scheme: got %v", err)
	}
}

func TestDialect_QuoteIdent(t *testing.T) {
	for _, tc := range []struct{ dialect, in, want string }{
		{"sqlite", `a"b`, `"a""b"`},
		{"postgres", `posts`, `"posts"`},
		{"mysql", "a`b", "`a``b`"},
	} {
		t.Run(tc.dialect, func(t *testing.T) {
			db := sqldbtest.MustOpen(t, tc.dialect)
			if got := db.Dialect().QuoteIdent(tc.in); got != tc.want {
				t.Errorf("QuoteIdent(%q) = %s, want %s", tc.in, got, tc.want)
			}
			if db.Dialect().Name() != tc.dialect {
				t.Errorf("Name() = %s", db.Dialect().Name())
			}
		})
	}
}

func TestDB_Models(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		sqldbtest.MustExec(t, db, map[string]string{
			"": `CREATE TABLE tags (name VARCHAR(50) NOT NULL, lang VARCHAR(5) NOT NULL, note TEXT, UNIQUE (name, lang))`,
		})
		if err := db.EnsureOutbox(ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.EnsureApplied(ctx); err != nil {
			t.Fatal(err)
		}
		models, err := db.Models(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, m := range models {
			names = append(names, m.Name)
		}
		if !reflect.DeepEqual(names, []string{"posts", "tags"}) {
			t.Fatalf("models = %v, want [posts tags]", names)
		}
		posts := models[0]
		var cols []string
		for _, c := range posts.Columns {
			cols = append(cols, c.Name)
			if c.Type == "" {
				t.Errorf("column %s has no type", c.Name)
			}
		}
		if !reflect.DeepEqual(cols, sqldbtest.PostsColumns) {
			t.Errorf("columns = %v", cols)
		}
		id, ulid, title := posts.Columns[0], posts.Columns[1], posts.Columns[3]
		if !id.PrimaryKey || id.Nullable || ulid.PrimaryKey || ulid.Nullable || !title.Nullable {
			t.Errorf("flags: id %+v ulid %+v title %+v", id, ulid, title)
		}
		if !reflect.DeepEqual(posts.Unique, [][]string{{"ulid"}}) {
			t.Errorf("posts unique = %v", posts.Unique)
		}
		if !reflect.DeepEqual(models[1].Unique, [][]string{{"name", "lang"}}) {
			t.Errorf("tags unique = %v", models[1].Unique)
		}
	})
}

func TestDB_Model(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if err := db.EnsureOutbox(ctx); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"posts", "mooxsync_changes", crafted, ""} {
			if _, err := db.Model(ctx, name); protocol.CodeOf(err) != protocol.CodeUnknownModel {
				t.Errorf("Model(%q): got %v, want unknown_model", name, err)
			}
		}
		// Created after a miss: found on the next call without an explicit refresh.
		sqldbtest.CreatePosts(t, db, "posts")
		m, err := db.Model(ctx, "posts")
		if err != nil {
			t.Fatal(err)
		}
		if m.Name != "posts" || len(m.Columns) != len(sqldbtest.PostsColumns) {
			t.Errorf("model = %+v", m)
		}
		// The returned model is a copy.
		m.Columns[0].Name = "changed"
		again, _ := db.Model(ctx, "posts")
		if again.Columns[0].Name != "id" {
			t.Errorf("cache was modified through a returned model")
		}
	})
}

func TestWriter_RefusesCraftedNames(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		w, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Rollback()
		row := map[string]any{"ulid": "01A", crafted: 1}
		if _, err := w.Upsert(ctx, "posts", "ulid", row); protocol.CodeOf(err) != protocol.CodeUnknownColumn {
			t.Errorf("crafted column: got %v", err)
		}
		if _, err := w.Upsert(ctx, crafted, "ulid", map[string]any{"ulid": "01A"}); protocol.CodeOf(err) != protocol.CodeUnknownModel {
			t.Errorf("crafted table: got %v", err)
		}
		if _, err := w.Delete(ctx, "posts", crafted, "x"); protocol.CodeOf(err) != protocol.CodeUnknownColumn {
			t.Errorf("crafted key: got %v", err)
		}
		if _, err := w.Update(ctx, "posts", "ulid", "01A", map[string]any{crafted: 1}); protocol.CodeOf(err) != protocol.CodeUnknownColumn {
			t.Errorf("crafted update column: got %v", err)
		}
		if _, _, err := db.Get(ctx, "posts", crafted, "x"); protocol.CodeOf(err) != protocol.CodeUnknownColumn {
			t.Errorf("crafted get key: got %v", err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := db.InstallTriggers(ctx, crafted); protocol.CodeOf(err) != protocol.CodeUnknownModel {
			t.Errorf("crafted trigger table: got %v", err)
		}
		if _, err := db.Model(ctx, "posts"); err != nil {
			t.Fatalf("posts is gone: %v", err)
		}
		if n := countRows(t, db, "posts"); n != 0 {
			t.Errorf("posts has %d rows", n)
		}
	})
}

func TestWriter_QuotesOddNames(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		d := db.Dialect()
		table, key, col := "we\"ird`table 'x'", "the key", `va"l'ue`
		sqldbtest.MustExec(t, db, map[string]string{"": `CREATE TABLE ` + d.QuoteIdent(table) + ` (` +
			d.QuoteIdent(key) + ` VARCHAR(40) NOT NULL UNIQUE, ` + d.QuoteIdent(col) + ` TEXT)`})
		if err := db.InstallTriggers(ctx, table); err != nil {
			t.Fatal(err)
		}
		w, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Rollback()
		if _, err := w.Upsert(ctx, table, key, map[string]any{key: "k'1\"", col: "v"}); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		row, ok, err := db.Get(ctx, table, key, "k'1\"")
		if err != nil || !ok || row[col] != "v" {
			t.Fatalf("get = %v %v %v", row, ok, err)
		}
		changes := readAll(t, db)
		if len(changes) != 1 || changes[0].Model != table || changes[0].Row[col] != "v" {
			t.Fatalf("changes = %+v", changes)
		}
	})
}

func TestWriter_UpsertDeleteExists(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		w, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Rollback()
		step := func(name string, row map[string]any, wantInserted bool) {
			t.Helper()
			ins, err := w.Upsert(ctx, "posts", "ulid", row)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ins != wantInserted {
				t.Errorf("%s: inserted = %v, want %v", name, ins, wantInserted)
			}
		}
		step("insert", map[string]any{"ulid": "01A", "title": "one"}, true)
		step("update", map[string]any{"ulid": "01A", "title": "two"}, false)
		step("same values", map[string]any{"ulid": "01A", "title": "two"}, false)
		step("key only", map[string]any{"ulid": "01A"}, false)
		step("second row", map[string]any{"ulid": "01B", "title": "b"}, true)

		// slug has no unique index: select-then-update/insert, never a duplicate.
		slugStep := func(name string, row map[string]any, wantInserted bool) {
			t.Helper()
			ins, err := w.Upsert(ctx, "posts", "slug", row)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ins != wantInserted {
				t.Errorf("%s: inserted = %v, want %v", name, ins, wantInserted)
			}
		}
		slugStep("slug insert", map[string]any{"slug": "hello", "ulid": "01C", "title": "x"}, true)
		slugStep("slug update", map[string]any{"slug": "hello", "ulid": "01C", "title": "y"}, false)
		slugStep("slug same", map[string]any{"slug": "hello", "ulid": "01C", "title": "y"}, false)

		if ok, err := w.InsertIfAbsent(ctx, "posts", "ulid", map[string]any{"ulid": "01A", "title": "ignored"}); err != nil || ok {
			t.Errorf("InsertIfAbsent existing = %v, %v", ok, err)
		}
		if ok, err := w.InsertIfAbsent(ctx, "posts", "slug", map[string]any{"slug": "hello", "ulid": "01Z"}); err != nil || ok {
			t.Errorf("InsertIfAbsent existing slug = %v, %v", ok, err)
		}
		if ok, err := w.InsertIfAbsent(ctx, "posts", "ulid", map[string]any{"ulid": "01D", "title": "d"}); err != nil || !ok {
			t.Errorf("InsertIfAbsent new = %v, %v", ok, err)
		}
		if n, err := w.Update(ctx, "posts", "ulid", "01D", map[string]any{"title": "dd"}); err != nil || n != 1 {
			t.Errorf("Update = %d, %v", n, err)
		}
		if ok, err := w.Exists(ctx, "posts", "ulid", "01B"); err != nil || !ok {
			t.Errorf("Exists = %v, %v", ok, err)
		}
		if n, err := w.Delete(ctx, "posts", "ulid", "01B"); err != nil || n != 1 {
			t.Errorf("Delete = %d, %v", n, err)
		}
		if n, err := w.Delete(ctx, "posts", "ulid", "01B"); err != nil || n != 0 {
			t.Errorf("Delete missing = %d, %v", n, err)
		}
		if ok, err := w.Exists(ctx, "posts", "ulid", "01B"); err != nil || ok {
			t.Errorf("Exists after delete = %v, %v", ok, err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db, "posts"); n != 3 {
			t.Errorf("rows = %d, want 3", n)
		}
		for ulid, title := range map[string]string{"01A": "two", "01C": "y", "01D": "dd"} {
			row, ok, err := db.Get(ctx, "posts", "ulid", ulid)
			if err != nil || !ok || row["title"] != title {
				t.Errorf("Get(%s) = %v %v %v, want title %s", ulid, row, ok, err, title)
			}
		}
	})
}

func TestWriter_Values(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		big := strings.Repeat("äbc€😀", 100*1024/12)
		in := map[string]any{
			"ulid":         "01HZ0000000000000000000001",
			"slug":         nil,
			"title":        "Grüße 🌍 — 日本語 'quoted' \"double\" \\back",
			"body":         big,
			"views":        json.Number("9223372036854775807"),
			"price":        json.Number("1234.50"),
			"rating":       json.Number("4.25"),
			"published":    true,
			"meta":         map[string]any{"tags": []any{"a", "b"}, "n": json.Number("1")},
			"published_at": "2026-11-26T12:00:00.123Z",
			"created_at":   "2026-11-26 13:14:15",
		}
		w, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Rollback()
		if _, err := w.Upsert(ctx, "posts", "ulid", in); err != nil {
			t.Fatal(err)
		}
		bad := map[string]any{"ulid": "01X", "published_at": "next tuesday"}
		if _, err := w.Upsert(ctx, "posts", "ulid", bad); protocol.CodeOf(err) != protocol.CodeBadRequest {
			t.Errorf("bad datetime: got %v", err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		got, ok, err := db.Get(ctx, "posts", "ulid", in["ulid"])
		if err != nil || !ok {
			t.Fatalf("get: %v %v", ok, err)
		}
		checkCanonical(t, got, big)
	})
}

// checkCanonical checks the row written by TestWriter_Values, as Get and row images give it.
func checkCanonical(t *testing.T, got map[string]any, big string) {
	t.Helper()
	want := map[string]any{
		"slug":         nil,
		"title":        "Grüße 🌍 — 日本語 'quoted' \"double\" \\back",
		"views":        json.Number("9223372036854775807"),
		"rating":       json.Number("4.25"),
		"published":    true,
		"meta":         map[string]any{"tags": []any{"a", "b"}, "n": json.Number("1")},
		"published_at": "2026-11-26T12:00:00.123Z",
		"created_at":   "2026-11-26T13:14:15Z",
	}
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if got["body"] != big {
		t.Errorf("body: %d bytes back, want %d", len(asString(got["body"])), len(big))
	}
	if p, ok := got["price"].(json.Number); !ok || p.String() != "1234.50" && p.String() != "1234.5" {
		t.Errorf("price = %#v", got["price"])
	}
	if id, ok := got["id"].(json.Number); !ok || id == "" {
		t.Errorf("id = %#v", got["id"])
	}
}

func TestTriggers_Capture(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		capturedPosts(t, db)
		before := time.Now().Add(-time.Minute)
		// MariaDB takes no zone suffix; the session runs in UTC.
		truth, createdAt := "1", "'2026-11-26 12:00:00.250+00:00'"
		switch db.Dialect().Name() {
		case "postgres":
			truth = "true"
		case "mysql":
			createdAt = "'2026-11-26 12:00:00.250'"
		}
		sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO posts (ulid, slug, title, views, published, meta, published_at, created_at)
			VALUES ('01A', 's1', 'T1', 5, ` + truth + `, '{"a": 1}', '2026-11-26 12:00:00', ` + createdAt + `);
			UPDATE posts SET title = 'T2' WHERE ulid = '01A';
			UPDATE posts SET title = 'T2' WHERE ulid = '01A';
			UPDATE posts SET title = 't2' WHERE ulid = '01A';
			DELETE FROM posts WHERE ulid = '01A'`})
		changes := readAll(t, db)
		var ops, titles []string
		for i, c := range changes {
			ops = append(ops, c.Op)
			titles = append(titles, asString(c.Row["title"]))
			if c.Model != "posts" || c.OriginPlatformID != 0 {
				t.Errorf("change %d: model %q origin %d", i, c.Model, c.OriginPlatformID)
			}
			if i > 0 && c.Seq <= changes[i-1].Seq {
				t.Errorf("seq not increasing: %d after %d", c.Seq, changes[i-1].Seq)
			}
			if c.ChangedAt.Before(before) || c.ChangedAt.After(time.Now().Add(time.Minute)) || c.ChangedAt.Location() != time.UTC {
				t.Errorf("changed_at = %v", c.ChangedAt)
			}
			if len(c.Row) != len(sqldbtest.PostsColumns) {
				t.Errorf("change %d: row image has %d columns, want %d: %v", i, len(c.Row), len(sqldbtest.PostsColumns), c.Row)
			}
		}
		if !reflect.DeepEqual(ops, []string{"created", "updated", "updated", "deleted"}) {
			t.Fatalf("ops = %v", ops)
		}
		if !reflect.DeepEqual(titles, []string{"T1", "T2", "t2", "t2"}) {
			t.Errorf("titles = %v", titles)
		}
		img := changes[0].Row
		want := map[string]any{
			"ulid": "01A", "slug": "s1", "views": json.Number("5"), "published": true,
			"meta": map[string]any{"a": json.Number("1")}, "published_at": "2026-11-26T12:00:00Z",
			"created_at": "2026-11-26T12:00:00.25Z", "body": nil,
		}
		for k, v := range want {
			if !reflect.DeepEqual(img[k], v) {
				t.Errorf("image %s = %#v, want %#v", k, img[k], v)
			}
		}
		if _, ok := img["id"].(json.Number); !ok {
			t.Errorf("image id = %#v", img["id"])
		}
	})
}

func TestTriggers_CaptureValues(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		capturedPosts(t, db)
		big := strings.Repeat("äbc€😀", 100*1024/12)
		w, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Rollback()
		_, err = w.Upsert(ctx, "posts", "ulid", map[string]any{
			"ulid": "01A", "slug": nil, "title": "Grüße 🌍 — 日本語 'quoted' \"double\" \\back", "body": big,
			"views": json.Number("9223372036854775807"), "price": json.Number("1234.50"), "rating": 4.25,
			"published": true, "meta": `{"tags":["a","b"],"n":1}`,
			"published_at": "2026-11-26T13:00:00.123+01:00", "created_at": "2026-11-26T13:14:15Z",
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		changes := readAll(t, db)
		if len(changes) != 1 {
			t.Fatalf("%d changes", len(changes))
		}
		checkCanonical(t, changes[0].Row, big)
	})
}

func TestTriggers_Origin(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		capturedPosts(t, db)
		w, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Rollback()
		write := func(origin int64, ulid string) {
			t.Helper()
			if err := w.SetOrigin(ctx, origin); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Upsert(ctx, "posts", "ulid", map[string]any{"ulid": ulid}); err != nil {
				t.Fatal(err)
			}
		}
		write(7, "01A")
		write(7, "01B")
		write(0, "01C")
		write(9, "01D")
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		// Plain writes afterwards, possibly on the same pooled connection, are local again.
		for range 3 {
			sqldbtest.MustExec(t, db, map[string]string{"": `UPDATE posts SET title = 'local' WHERE title IS NULL OR title <> 'local'`})
			sqldbtest.MustExec(t, db, map[string]string{"": `UPDATE posts SET title = 'again'`})
		}
		// A rolled back Writer leaves no marker behind either.
		w2, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := w2.SetOrigin(ctx, 5); err != nil {
			t.Fatal(err)
		}
		if err := w2.Rollback(); err != nil {
			t.Fatal(err)
		}
		sqldbtest.MustExec(t, db, map[string]string{"": `DELETE FROM posts WHERE ulid = '01A'`})

		var got []int64
		for _, c := range readAll(t, db) {
			got = append(got, c.OriginPlatformID)
		}
		// 4 inserts, 3 x 2 updates of 4 rows, 1 delete; only the first four are foreign.
		want := append([]int64{7, 7, 0, 9}, make([]int64, 3*2*4+1)...)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("origins = %v, want %v", got, want)
		}
	})
}

func TestTriggers_ReinstallAndRemove(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		sqldbtest.CreatePosts(t, db, "pages")
		for range 2 {
			if err := db.InstallTriggers(ctx, "posts"); err != nil {
				t.Fatal(err)
			}
		}
		first, err := db.TriggersOn(ctx, "posts")
		if err != nil {
			t.Fatal(err)
		}
		if len(first) != 3 {
			t.Fatalf("triggers = %v", first)
		}
		for _, name := range first {
			if !strings.HasPrefix(name, "mooxsync_v1_posts_") {
				t.Errorf("trigger name %q", name)
			}
		}
		if got, _ := db.InstalledTriggers(ctx); !reflect.DeepEqual(got, []string{"posts"}) {
			t.Errorf("installed = %v", got)
		}

		// A new column: reinstall replaces the triggers and the image carries the column.
		sqldbtest.MustExec(t, db, map[string]string{"": `ALTER TABLE posts ADD COLUMN extra VARCHAR(20)`})
		if err := db.InstallTriggers(ctx, "posts"); err != nil {
			t.Fatal(err)
		}
		second, _ := db.TriggersOn(ctx, "posts")
		// PostgreSQL's triggers do not list columns (row_to_json): they stay as they are.
		if len(second) != 3 || slices.Equal(first, second) != (db.Dialect().Name() == "postgres") {
			t.Errorf("after reinstall: %v (before %v)", second, first)
		}
		if err := db.InstallTriggers(ctx, "pages"); err != nil {
			t.Fatal(err)
		}
		sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO posts (ulid, extra) VALUES ('01A', 'e')`})
		changes := readAll(t, db)
		if len(changes) != 1 || changes[0].Row["extra"] != "e" {
			t.Fatalf("changes = %+v", changes)
		}
		if got, _ := db.InstalledTriggers(ctx); !reflect.DeepEqual(got, []string{"pages", "posts"}) {
			t.Errorf("installed = %v", got)
		}

		for range 2 {
			if err := db.RemoveTriggers(ctx, "posts"); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.RemoveTriggers(ctx, "no_such_table"); err != nil {
			t.Errorf("remove from a missing table: %v", err)
		}
		if got, _ := db.InstalledTriggers(ctx); !reflect.DeepEqual(got, []string{"pages"}) {
			t.Errorf("installed after remove = %v", got)
		}
		sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO posts (ulid) VALUES ('01B')`})
		if n := len(readAll(t, db)); n != 1 {
			t.Errorf("%d changes after remove, want 1", n)
		}
	})
}

func TestOutbox_ReadAndPurge(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		capturedPosts(t, db)
		insert := func(ulids ...string) {
			for _, u := range ulids {
				sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO posts (ulid) VALUES ('` + u + `')`})
			}
		}
		insert("1", "2", "3", "4", "5")
		all := readAll(t, db)
		if len(all) != 5 {
			t.Fatalf("%d changes", len(all))
		}
		page, err := db.ReadChanges(ctx, all[1].Seq, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 2 || page[0].Seq != all[2].Seq || page[1].Seq != all[3].Seq {
			t.Errorf("page = %+v", page)
		}
		if err := db.PurgeChanges(ctx, all[2].Seq); err != nil {
			t.Fatal(err)
		}
		if rest := readAll(t, db); len(rest) != 2 || rest[0].Seq != all[3].Seq {
			t.Errorf("after purge: %+v", rest)
		}
		if err := db.PurgeChanges(ctx, all[4].Seq); err != nil {
			t.Fatal(err)
		}
		insert("6")
		// Sequence numbers are never reused, even when the outbox was emptied.
		if rest := readAll(t, db); len(rest) != 1 || rest[0].Seq <= all[4].Seq {
			t.Errorf("after emptying: %+v (last seq was %d)", rest, all[4].Seq)
		}
	})
}

func TestWriter_MarkApplied(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if err := db.EnsureApplied(ctx); err != nil {
			t.Fatal(err)
		}
		mark := func(sync int64, batch string) bool {
			t.Helper()
			w, err := db.BeginWrite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Rollback()
			ok, err := w.MarkApplied(ctx, sync, batch)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !mark(1, "01ABC") || mark(1, "01ABC") || !mark(2, "01ABC") || !mark(1, "01abc") {
			t.Error("MarkApplied: want new, seen, new (other sync), new (other case)")
		}
		if err := db.PurgeApplied(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if !mark(1, "01ABC") {
			t.Error("MarkApplied after purge: want new")
		}
	})
}

func TestParseDatetime(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"2026-11-26T12:00:00Z", "2026-11-26T12:00:00Z"},
		{"2026-11-26T12:00:00.123456789Z", "2026-11-26T12:00:00.123456789Z"},
		{"2026-11-26T13:00:00.5+01:00", "2026-11-26T12:00:00.5Z"},
		{"2026-11-26 12:00:00", "2026-11-26T12:00:00Z"},
		{"2026-11-26 12:00:00.250", "2026-11-26T12:00:00.25Z"},
		{"2026-11-26 12:00:00+00", "2026-11-26T12:00:00Z"},
		{"2026-11-26T12:00:00.123", "2026-11-26T12:00:00.123Z"},
		{"2026-11-26", "2026-11-26T00:00:00Z"},
		{"2026-11-26 12:00", "2026-11-26T12:00:00Z"},
		{"2026-11-26 12:00:00 -0700", "2026-11-26T19:00:00Z"},
		{"2026-11-26T12:00:00+0100", "2026-11-26T11:00:00Z"},
		{"2026-11-26T12:00:00,5Z", "2026-11-26T12:00:00.5Z"},
		{"2024-02-29 00:00:00", "2024-02-29T00:00:00Z"},
		{" 2026-11-26 12:00:00 ", "2026-11-26T12:00:00Z"},
	} {
		got, ok := sqldb.ParseDatetime(tc.in)
		if !ok || sqldb.FormatDatetime(got) != tc.want {
			t.Errorf("ParseDatetime(%q) = %v %v, want %s", tc.in, sqldb.FormatDatetime(got), ok, tc.want)
		}
	}
	for _, bad := range []string{"", "tomorrow", "26.11.2026", "2026-13-01", "12:00:00", "2026-02-30",
		"2025-02-29 00:00:00", "2026-11-26T24:00:00Z", "2026-11-26T12:00:00.Z", "2026-11-26T12:00:00+25:00",
		"2026-11-26T12:00:00Zjunk", "0000-00-00 00:00:00"} {
		if _, ok := sqldb.ParseDatetime(bad); ok {
			t.Errorf("ParseDatetime(%q): want failure", bad)
		}
	}
}

// capturedPosts creates the posts table with capture triggers.
func capturedPosts(t *testing.T, db *sqldb.DB) {
	t.Helper()
	sqldbtest.CreatePosts(t, db, "posts")
	if err := db.InstallTriggers(context.Background(), "posts"); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, db *sqldb.DB) []sqldb.OutboxRow {
	t.Helper()
	rows, err := db.ReadChanges(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func countRows(t *testing.T, db *sqldb.DB, table string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM ` + db.Dialect().QuoteIdent(table)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

func TestWriter_UpsertRows(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		for _, key := range []string{"ulid", "slug"} { // with and without a unique index
			t.Run(key, func(t *testing.T) {
				sqldbtest.MustExec(t, db, map[string]string{"": `DELETE FROM posts`})
				other := map[string]string{"ulid": "slug", "slug": "ulid"}[key]
				row := func(i int, title string) []any {
					k := fmt.Sprintf("k%03d", i)
					return []any{k, "o" + k, title, json.Number(fmt.Sprint(i))}
				}
				cols := []string{key, other, "title", "views"}
				write := func(values [][]any) (int, int) {
					t.Helper()
					w, err := db.BeginWrite(ctx)
					if err != nil {
						t.Fatal(err)
					}
					defer w.Rollback()
					ins, upd, err := w.UpsertRows(ctx, "posts", key, cols, values)
					if err != nil {
						t.Fatal(err)
					}
					if err := w.Commit(); err != nil {
						t.Fatal(err)
					}
					return ins, upd
				}
				var first [][]any
				for i := range 50 {
					first = append(first, row(i, "old"))
				}
				if ins, upd := write(first); ins != 50 || upd != 0 {
					t.Fatalf("first: %d inserted, %d updated", ins, upd)
				}
				// 200 keys, 50 of them existing, and 37 keys repeated later in the same run:
				// statements of 100, 10 and 1 rows, keys twice in a run, mixed chunks.
				var values [][]any
				for i := range 200 {
					values = append(values, row(i, "new"))
					if i == 120 {
						for j := 10; j < 47; j++ {
							values = append(values, row(j, "dup"))
						}
					}
				}
				if ins, upd := write(values); ins != 150 || upd != 50+37 {
					t.Errorf("second: %d inserted, %d updated; want 150, 87", ins, upd)
				}
				if n := countRows(t, db, "posts"); n != 200 {
					t.Errorf("%d rows, want 200", n)
				}
				for i, want := range map[int]string{0: "new", 10: "dup", 46: "dup", 47: "new", 199: "new"} {
					got, ok, err := db.Get(ctx, "posts", key, fmt.Sprintf("k%03d", i))
					if err != nil || !ok || got["title"] != want || got["views"] != json.Number(fmt.Sprint(i)) {
						t.Errorf("k%03d = %v %v %v, want title %s", i, got, ok, err, want)
					}
				}
				// The same values again: all counted as updated, nothing inserted.
				if ins, upd := write(values); ins != 0 || upd != len(values) {
					t.Errorf("third: %d inserted, %d updated", ins, upd)
				}
			})
		}
	})
}

func TestWriter_UpsertNeverOverwritesAnotherRecord(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.MustExec(t, db, map[string]string{"": `CREATE TABLE people (
			ulid VARCHAR(26) NOT NULL UNIQUE, email VARCHAR(100) NOT NULL UNIQUE, name VARCHAR(100))`})
		sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO people (ulid, email, name) VALUES ('01A', 'a@example.org', 'A')`})
		for _, many := range []bool{false, true} {
			w, err := db.BeginWrite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			row := map[string]any{"ulid": "01B", "email": "a@example.org", "name": "B"}
			if many {
				_, _, err = w.UpsertMany(ctx, "people", "ulid", []map[string]any{{"ulid": "01C", "email": "c@example.org", "name": "C"}, row})
			} else {
				_, err = w.Upsert(ctx, "people", "ulid", row)
			}
			if err == nil {
				t.Errorf("many=%v: a new record whose email collides with another's was accepted", many)
			}
			w.Rollback()
		}
		got, ok, err := db.Get(ctx, "people", "ulid", "01A")
		if err != nil || !ok || got["name"] != "A" {
			t.Errorf("01A = %v %v %v", got, ok, err)
		}
		if n := countRows(t, db, "people"); n != 1 {
			t.Errorf("%d rows", n)
		}
	})
}

func TestDB_Listen(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		l, err := db.Listen(ctx)
		if db.Dialect().Name() != "postgres" {
			if !errors.Is(err, sqldb.ErrNoNotifications) {
				t.Errorf("Listen: got %v, want ErrNoNotifications", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		capturedPosts(t, db)
		sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO posts (ulid) VALUES ('01A')`})
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := l.Wait(wctx); err != nil {
			t.Fatalf("Wait: %v", err)
		}
	})
}

func TestReadChanges_ColumnAddedSinceCached(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		capturedPosts(t, db)
		if _, err := db.Model(ctx, "posts"); err != nil { // cache the schema
			t.Fatal(err)
		}
		sqldbtest.MustExec(t, db, map[string]string{"": `ALTER TABLE posts ADD COLUMN seen_at TIMESTAMP NULL`})
		// PostgreSQL's triggers take the new column without a reinstall, so the cached schema
		// is stale when the change is read; SQLite's and MySQL's list their columns, and the
		// reinstall they need re-reads the table.
		if db.Dialect().Name() != "postgres" {
			if err := db.InstallTriggers(ctx, "posts"); err != nil {
				t.Fatal(err)
			}
		}
		sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO posts (ulid, seen_at) VALUES ('01A', '2026-11-26 12:00:00')`})
		changes := readAll(t, db)
		if len(changes) != 1 || changes[0].Row["seen_at"] != "2026-11-26T12:00:00Z" {
			t.Fatalf("changes = %+v", changes)
		}
	})
}

func TestTriggers_CaseOnlyChange(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		// Case-insensitive where the dialect has it without an extension.
		sqldbtest.MustExec(t, db, map[string]string{
			"sqlite":   `CREATE TABLE tags (slug TEXT COLLATE NOCASE NOT NULL UNIQUE, n INTEGER)`,
			"postgres": `CREATE TABLE tags (slug TEXT NOT NULL UNIQUE, n INTEGER)`,
			"mysql":    `CREATE TABLE tags (slug VARCHAR(50) COLLATE utf8mb4_unicode_ci NOT NULL UNIQUE, n INTEGER)`,
		})
		if err := db.InstallTriggers(ctx, "tags"); err != nil {
			t.Fatal(err)
		}
		sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO tags (slug, n) VALUES ('Go', 1);
			UPDATE tags SET slug = 'GO';
			UPDATE tags SET slug = 'GO';
			UPDATE tags SET n = 1`})
		var got []string
		for _, c := range readAll(t, db) {
			got = append(got, c.Op+":"+asString(c.Row["slug"]))
		}
		if want := []string{"created:Go", "updated:GO"}; !reflect.DeepEqual(got, want) {
			t.Errorf("changes = %v, want %v", got, want)
		}
	})
}
