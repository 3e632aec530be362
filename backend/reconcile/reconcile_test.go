package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/apply"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/reconcile"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// dialectPairs are the (source, target) databases the end-to-end tests run on: every
// dialect is a source and a target at least once, and most pairs differ.
var dialectPairs = [][2]string{{"sqlite", "sqlite"}, {"sqlite", "postgres"}, {"postgres", "mysql"}, {"mysql", "sqlite"}}

func forEachPair(t *testing.T, fn func(t *testing.T, src, dst *sqldb.DB)) {
	for _, p := range dialectPairs {
		t.Run(p[0]+"_to_"+p[1], func(t *testing.T) {
			src := sqldbtest.MustOpen(t, p[0])
			dst := sqldbtest.MustOpen(t, p[1])
			sqldbtest.CreatePosts(t, src, "posts")
			sqldbtest.CreatePosts(t, dst, "posts")
			fn(t, src, dst)
		})
	}
}

func TestRun_InitialLoadAndDrift(t *testing.T) {
	forEachPair(t, func(t *testing.T, src, dst *sqldb.DB) {
		ctx := context.Background()
		const n = 300
		fill(t, src, 0, n)
		f := newFixture(t, src, dst, postsSync)

		// Initial load: the target is empty, every range differs; progress ends at n of n.
		var last reconcile.Progress
		rep := f.run(reconcile.Options{BatchSize: 64, Progress: func(p reconcile.Progress) { last = p }})
		checkCounts(t, "initial load", rep, counts{Inserted: n})
		if last != (reconcile.Progress{Done: n, Total: n}) {
			t.Errorf("last progress = %+v", last)
		}
		if rep.RowsCompared != n || rep.Bytes == 0 || f.batches.Load() != (n+63)/64 {
			t.Errorf("report %s, %d batches", rep, f.batches.Load())
		}
		keys := make([]string, n)
		for i := range keys {
			keys[i] = sqldbtest.PostKey(i)
		}
		sameRows(t, f, keys)
		checkCounts(t, "in step", f.run(reconcile.Options{}), counts{})

		// Drift of every kind.
		edited, deleted, newOnSource, changedOnSource, goneOnSource := keys[10], keys[20], sqldbtest.PostKey(n), keys[30], keys[40]
		write(t, dst, func(w *sqldb.Writer) error {
			if _, err := w.Update(ctx, "posts", "ulid", edited, map[string]any{"title": "edited on the target"}); err != nil {
				return err
			}
			if _, err := w.Delete(ctx, "posts", "ulid", deleted); err != nil {
				return err
			}
			// The target's own rows: one among the synced keys, one after them all, one
			// before them all.
			for _, k := range []string{keys[50][:20] + "own", "zzz-own", "000-own"} {
				row := sqldbtest.PostRow(1)
				row["ulid"] = k
				if _, err := w.Upsert(ctx, "posts", "ulid", row); err != nil {
					return err
				}
			}
			return nil
		})
		fill(t, src, n, n+1) // a row the capture never saw
		write(t, src, func(w *sqldb.Writer) error {
			if _, err := w.Update(ctx, "posts", "ulid", changedOnSource, map[string]any{"views": 424242, "meta": map[string]any{"new": true}}); err != nil {
				return err
			}
			_, err := w.Delete(ctx, "posts", "ulid", goneOnSource)
			return err
		})
		want := counts{Inserted: 2, Updated: 2, Deleted: 1, SkippedUnowned: 3}

		// A dry run reports it all and changes nothing.
		before, err := dst.Hashes(ctx, "posts", "ulid", sqldbtest.PostsColumns, []sqldb.KeyRange{{}})
		if err != nil {
			t.Fatal(err)
		}
		batches := f.batches.Load()
		rep = f.run(reconcile.Options{DryRun: true})
		checkCounts(t, "dry run", rep, want)
		after, err := dst.Hashes(ctx, "posts", "ulid", sqldbtest.PostsColumns, []sqldb.KeyRange{{}})
		if err != nil {
			t.Fatal(err)
		}
		if after[0] != before[0] || f.batches.Load() != batches || !rep.DryRun {
			t.Errorf("the dry run changed the target")
		}

		// The real run repairs exactly that, and leaves the target's own rows alone.
		rep = f.run(reconcile.Options{})
		checkCounts(t, "repair", rep, want)
		if len(rep.Errors) != 0 {
			t.Errorf("errors: %q", rep.Errors)
		}
		sameRows(t, f, append(keys[:40:40], append(keys[41:], newOnSource)...))
		if get(t, dst, "posts", goneOnSource) != nil {
			t.Errorf("%s, gone from the source and owned, is still on the target", goneOnSource)
		}
		for _, k := range []string{keys[50][:20] + "own", "zzz-own", "000-own"} {
			if get(t, dst, "posts", k) == nil {
				t.Errorf("the target's own row %s was deleted", k)
			}
		}
		checkCounts(t, "in step again", f.run(reconcile.Options{}), counts{SkippedUnowned: 3})
	})
}

// TestRun_OwnershipSurvivesAndDeleteNeedsIt: a row the target had before the sync wrote it
// becomes owned once the sync writes it; a row never written by the sync is never deleted,
// even when it has a synced-looking key.
func TestRun_DeletesOnlyOwnedRows(t *testing.T) {
	db := sqldbtest.MustOpenSQLite(t)
	dst := sqldbtest.MustOpenSQLite(t)
	sqldbtest.CreatePosts(t, db, "posts")
	sqldbtest.CreatePosts(t, dst, "posts")
	fill(t, db, 0, 50)
	fill(t, dst, 0, 60) // the target has all of them, and 10 more, none owned
	f := newFixture(t, db, dst, postsSync)
	checkCounts(t, "nothing owned", f.run(reconcile.Options{}), counts{SkippedUnowned: 10})
	// Now the sync writes row 55 (it appears on the source, then leaves it): owned, deleted.
	fill(t, db, 55, 56)
	write(t, db, func(w *sqldb.Writer) error {
		_, err := w.Update(context.Background(), "posts", "ulid", sqldbtest.PostKey(55), map[string]any{"title": "changed"})
		return err
	})
	checkCounts(t, "written", f.run(reconcile.Options{}), counts{Updated: 1, SkippedUnowned: 9})
	write(t, db, func(w *sqldb.Writer) error {
		_, err := w.Delete(context.Background(), "posts", "ulid", sqldbtest.PostKey(55))
		return err
	})
	checkCounts(t, "gone", f.run(reconcile.Options{}), counts{Deleted: 1, SkippedUnowned: 9})
}

// TestRun_ManyTargetRows: the target's own rows in one range outnumber a keys answer; they
// come in pages and are all left alone.
func TestRun_ManyTargetRows(t *testing.T) {
	src := sqldbtest.MustOpenSQLite(t)
	dst := sqldbtest.MustOpenSQLite(t)
	sqldbtest.CreatePosts(t, src, "posts")
	sqldbtest.CreatePosts(t, dst, "posts")
	fill(t, src, 0, 100)
	f := newFixture(t, src, dst, postsSync)
	f.run(reconcile.Options{})
	const own = reconcile.MaxKeys + 500
	var rows []map[string]any
	for i := range own {
		row := sqldbtest.PostRow(i)
		row["ulid"] = fmt.Sprintf("zz-%06d", i)
		rows = append(rows, row)
	}
	write(t, dst, func(w *sqldb.Writer) error {
		_, _, err := w.UpsertMany(context.Background(), "posts", "ulid", rows)
		return err
	})
	// The source loses its last row: the target's own rows share its range.
	write(t, src, func(w *sqldb.Writer) error {
		_, err := w.Delete(context.Background(), "posts", "ulid", lastKey(t, src))
		return err
	})
	rep := f.run(reconcile.Options{LeafRows: 1000})
	checkCounts(t, "pages", rep, counts{Deleted: 1, SkippedUnowned: own})
}

func lastKey(t testing.TB, db *sqldb.DB) string {
	t.Helper()
	rows, err := db.Rows(context.Background(), "posts", "ulid", nil, sqldb.KeyRange{})
	if err != nil {
		t.Fatal(err)
	}
	return rows[len(rows)-1]["ulid"].(string)
}

// TestRun_FieldMappingsAndTransformer: the target sees the rows through the sync's field
// mappings and the source's transformer; rows the transformer drops are deleted from the
// target when the sync owns them.
func TestRun_FieldMappingsAndTransformer(t *testing.T) {
	forEachPair(t, func(t *testing.T, src, dst *sqldb.DB) {
		ctx := context.Background()
		d := dst.Dialect()
		sqldbtest.MustExec(t, dst, map[string]string{"": `CREATE TABLE articles (` + d.QuoteIdent("id") + ` INTEGER, ` +
			`uid VARCHAR(40) NOT NULL UNIQUE, headline VARCHAR(200), hits BIGINT, extra VARCHAR(20))`})
		s := postsSync
		s.TargetModel = "articles"
		s.SyncAllFields = false
		s.FieldMappings = map[string]string{"ulid": "uid", "title": "headline", "views": "hits"}
		fill(t, src, 0, 120)
		f := newFixture(t, src, dst, s)
		// The transformer upper-cases titles and drops posts whose views end in 0.
		f.tr = transform.Func(func(_ context.Context, c transform.Change) (transform.Change, bool, error) {
			if strings.HasSuffix(fmt.Sprint(c.Data["views"]), "0") {
				return c, false, nil
			}
			c.Data["title"] = strings.ToUpper(fmt.Sprint(c.Data["title"]))
			return c, true, nil
		})
		// The repairs carry untransformed rows: the sender transforms them on their way.
		orig := f.Repair
		repair := reconcile.RepairFunc(func(ctx context.Context, changes []protocol.Change) error {
			for i, c := range changes {
				if c.Data == nil {
					continue
				}
				out, keep, err := f.tr.Transform(ctx, transform.Change{Data: c.Data})
				if err != nil || !keep {
					return fmt.Errorf("a dropped row was sent: %v %v", keep, err)
				}
				changes[i].Data = out.Data
			}
			return orig(ctx, changes)
		})
		runWith := func(opts reconcile.Options) reconcile.Report {
			t.Helper()
			srcSide, err := reconcile.NewSource(ctx, src, s, apply.Config{}, f.tr)
			if err != nil {
				t.Fatal(err)
			}
			if p := srcSide.Projection(); p.Key != "ulid" || p.TargetKey != "uid" || strings.Join(p.Columns(), ",") != "headline,hits,uid" {
				t.Fatalf("projection = %+v", p)
			}
			opts.Repair = repair
			rep, err := reconcile.Run(ctx, srcSide, reconcile.LocalPeer(reconcile.NewTarget(dst, apply.Config{}), s), opts)
			if err != nil {
				t.Fatal(err)
			}
			return rep
		}
		kept := 0
		for i := range 120 {
			if (i*7%100000)%10 != 0 {
				kept++
			}
		}
		checkCounts(t, "load", runWith(reconcile.Options{}), counts{Inserted: int64(kept)})
		checkCounts(t, "in step", runWith(reconcile.Options{}), counts{})
		row, ok, err := dst.Get(ctx, "articles", "uid", sqldbtest.PostKey(1))
		if err != nil || !ok || row["headline"] != "POST NUMBER 1" || row["hits"] != json.Number("7") {
			t.Fatalf("row 1 on the target: %v %v %v", row, ok, err)
		}
		// Post 1 now has views ending in 0: the transformer drops it, so the target loses it.
		write(t, src, func(w *sqldb.Writer) error {
			_, err := w.Update(ctx, "posts", "ulid", sqldbtest.PostKey(1), map[string]any{"views": 10})
			return err
		})
		// The target edits a column the sync does not write: not a difference.
		write(t, dst, func(w *sqldb.Writer) error {
			_, err := w.Update(ctx, "articles", "uid", sqldbtest.PostKey(2), map[string]any{"extra": "mine"})
			return err
		})
		checkCounts(t, "dropped", runWith(reconcile.Options{}), counts{Deleted: 1})
		if _, ok, _ := dst.Get(ctx, "articles", "uid", sqldbtest.PostKey(1)); ok {
			t.Error("the dropped row is still on the target")
		}
	})
}

// TestRun_DuplicateSourceKeys: a source table without a unique index may hold one key many
// times; its range cannot be cut further and is compared row by row, and the run ends.
func TestRun_DuplicateSourceKeys(t *testing.T) {
	src := sqldbtest.MustOpenSQLite(t)
	dst := sqldbtest.MustOpenSQLite(t)
	sqldbtest.MustExec(t, src, map[string]string{"": `CREATE TABLE items (slug VARCHAR(20), label VARCHAR(20))`})
	sqldbtest.MustExec(t, dst, map[string]string{"": `CREATE TABLE items (slug VARCHAR(20) UNIQUE, label VARCHAR(20))`})
	write(t, src, func(w *sqldb.Writer) error {
		for i := range 100 {
			slug := "same"
			if i%2 == 0 {
				slug = fmt.Sprintf("s%03d", i)
			}
			if err := w.Insert(context.Background(), "items", map[string]any{"slug": slug, "label": "x"}); err != nil {
				return err
			}
		}
		return nil
	})
	s := postsSync
	s.SourceModel, s.TargetModel = "items", "items"
	f := newFixture(t, src, dst, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srcSide, err := reconcile.NewSource(ctx, src, s, apply.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	peer := reconcile.LocalPeer(reconcile.NewTarget(dst, apply.Config{}), s)
	for range 2 {
		rep, err := reconcile.Run(ctx, srcSide, peer, reconcile.Options{Repair: f, LeafRows: 4, TopRanges: 4})
		if err != nil {
			t.Fatal(err)
		}
		if rep.RowsCompared != 100 {
			t.Errorf("report %s", rep)
		}
	}
	if n, _ := dst.Count(ctx, "items", "slug", sqldb.KeyRange{}); n != 51 {
		t.Errorf("target has %d items, want 51", n)
	}
}

// TestRun_IfExistsSkip: a sync that never overwrites sends only the missing rows.
func TestRun_IfExistsSkip(t *testing.T) {
	src := sqldbtest.MustOpenSQLite(t)
	dst := sqldbtest.MustOpenSQLite(t)
	sqldbtest.CreatePosts(t, src, "posts")
	sqldbtest.CreatePosts(t, dst, "posts")
	fill(t, src, 0, 40)
	s := postsSync
	s.IfExists = protocol.IfExistsSkip
	f := newFixture(t, src, dst, s)
	checkCounts(t, "load", f.run(reconcile.Options{}), counts{Inserted: 40})
	write(t, dst, func(w *sqldb.Writer) error {
		ctx := context.Background()
		if _, err := w.Update(ctx, "posts", "ulid", sqldbtest.PostKey(3), map[string]any{"title": "mine now"}); err != nil {
			return err
		}
		_, err := w.Delete(ctx, "posts", "ulid", sqldbtest.PostKey(4))
		return err
	})
	rep := f.run(reconcile.Options{})
	checkCounts(t, "skip", rep, counts{Inserted: 1})
	if rep.SkippedExisting != 1 {
		t.Errorf("skipped existing = %d", rep.SkippedExisting)
	}
	if get(t, dst, "posts", sqldbtest.PostKey(3))["title"] != "mine now" {
		t.Error("the edited row was overwritten")
	}
}
