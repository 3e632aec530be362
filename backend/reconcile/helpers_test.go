package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/mooxsync/mooxsync/backend/apply"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/reconcile"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// postsSync syncs posts of platform 1 to posts of platform 2, all fields.
var postsSync = protocol.Sync{
	ID: 7, Status: true, SourcePlatformID: 1, SourceModel: "posts", TargetPlatformID: 2,
	TargetModel: "posts", IfExists: protocol.IfExistsUpdate, SyncAllFields: true,
}

// fixture is a source and a target database with a sync between them; repairs go through
// JSON, protocol.DecodeBatch and the real apply, and are marked owned as the wired agent
// does (MarkOwned for upserts, Disown for deletes, in the apply transaction's wake).
type fixture struct {
	t        testing.TB
	src, dst *sqldb.DB
	sync     protocol.Sync
	tr       transform.Transformer
	applier  *apply.Applier
	batches  atomic.Int64
}

func newFixture(t testing.TB, src, dst *sqldb.DB, s protocol.Sync) *fixture {
	t.Helper()
	f := &fixture{t: t, src: src, dst: dst, sync: s, applier: apply.New(dst, apply.Config{})}
	if err := dst.EnsureOwned(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

// Repair applies changes on the target as the agent does with a delivered batch.
func (f *fixture) Repair(ctx context.Context, changes []protocol.Change) error {
	id := fmt.Sprintf("rc-%d", f.batches.Add(1))
	body, err := json.Marshal(protocol.Batch{BatchID: id, SourcePlatformID: f.sync.SourcePlatformID, SyncID: f.sync.ID, Changes: changes})
	if err != nil {
		return err
	}
	b, err := protocol.DecodeBatch(body)
	if err != nil {
		return err
	}
	if _, err := f.applier.ApplyBatch(ctx, f.sync, b); err != nil {
		return err
	}
	var owned, gone []string
	for _, c := range b.Changes {
		if c.EventType == protocol.EventDeleted {
			gone = append(gone, sqldb.KeyText(c.Key.Value))
		} else {
			owned = append(owned, sqldb.KeyText(c.Key.Value))
		}
	}
	w, err := f.dst.BeginWrite(ctx)
	if err != nil {
		return err
	}
	defer w.Rollback()
	if err := w.MarkOwned(ctx, f.sync.ID, f.sync.TargetModel, owned); err != nil {
		return err
	}
	if err := w.Disown(ctx, f.sync.TargetModel, gone); err != nil {
		return err
	}
	return w.Commit()
}

// run reconciles once.
func (f *fixture) run(opts reconcile.Options) reconcile.Report {
	f.t.Helper()
	ctx := context.Background()
	src, err := reconcile.NewSource(ctx, f.src, f.sync, apply.Config{}, f.tr)
	if err != nil {
		f.t.Fatal(err)
	}
	if !opts.DryRun {
		opts.Repair = f
	}
	opts.OriginPlatformID = f.sync.SourcePlatformID
	peer := reconcile.LocalPeer(reconcile.NewTarget(f.dst, apply.Config{}), f.sync)
	rep, err := reconcile.Run(ctx, src, peer, opts)
	if err != nil {
		f.t.Fatalf("reconcile: %v (report %+v)", err, rep)
	}
	return rep
}

// counts is the part of a report the tests check.
type counts struct {
	Inserted, Updated, Deleted, SkippedUnowned int64
}

func countsOf(r reconcile.Report) counts {
	return counts{r.Inserted, r.Updated, r.Deleted, r.SkippedUnowned}
}

func checkCounts(t testing.TB, what string, rep reconcile.Report, want counts) {
	t.Helper()
	if got := countsOf(rep); got != want {
		t.Errorf("%s: got %+v, want %+v (report %s, errors %q)", what, got, want, rep, rep.Errors)
	}
	if rep.Repaired != rep.Inserted+rep.Updated {
		t.Errorf("%s: repaired %d is not inserted + updated", what, rep.Repaired)
	}
}

// write runs fn in a write transaction of db.
func write(t testing.TB, db *sqldb.DB, fn func(w *sqldb.Writer) error) {
	t.Helper()
	ctx := context.Background()
	w, err := db.BeginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Rollback()
	if err := fn(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// fill adds posts from … to-1 (sqldbtest.PostRow) to db.
func fill(t testing.TB, db *sqldb.DB, from, to int) {
	t.Helper()
	var rows []map[string]any
	for i := from; i < to; i++ {
		rows = append(rows, sqldbtest.PostRow(i))
	}
	write(t, db, func(w *sqldb.Writer) error {
		_, _, err := w.UpsertMany(context.Background(), "posts", "ulid", rows)
		return err
	})
}

// get reads one post by ulid; nil when absent.
func get(t testing.TB, db *sqldb.DB, table, key string) map[string]any {
	t.Helper()
	row, ok, err := db.Get(context.Background(), table, "ulid", key)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil
	}
	return row
}

// sameRows reports whether the rows of keys agree on both sides over the sync's columns.
func sameRows(t testing.TB, f *fixture, keys []string) {
	t.Helper()
	ctx := context.Background()
	src, err := reconcile.NewSource(ctx, f.src, f.sync, apply.Config{}, f.tr)
	if err != nil {
		t.Fatal(err)
	}
	p := src.Projection()
	var srcCols []string
	for _, fl := range p.Fields {
		srcCols = append(srcCols, fl.Source)
	}
	mine := map[string]sqldb.Digest{}
	theirs := map[string]sqldb.Digest{}
	if err := f.src.ScanKeys(ctx, f.sync.SourceModel, p.Key, srcCols, keys, func(k string, vals []any) error {
		var h sqldb.RowHasher
		mine[k] = h.Sum(k, vals)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.dst.ScanKeys(ctx, f.sync.TargetModel, p.TargetKey, p.Columns(), keys, func(k string, vals []any) error {
		var h sqldb.RowHasher
		theirs[k] = h.Sum(k, vals)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(mine, theirs) {
		t.Errorf("rows differ:\n source %v\n target %v", mine, theirs)
	}
}
