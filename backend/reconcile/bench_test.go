package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/reconcile"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// BenchmarkReconcile1M reconciles a 1,000,000-row posts table (SQLite to SQLite, in one
// process, the target answering through JSON as on the wire, repairs applied by apply)
// after 0.1% drift on the target: 400 rows edited, 300 deleted, 300 of the target's own
// inserted, other ones every iteration. It reports the repair time (ns/op), the bytes
// exchanged, and those bytes as a percentage of a full copy (every row sent as a change,
// as the initial load sends them). Targets: under 30 s, under 2% of a full copy.
func BenchmarkReconcile1M(b *testing.B) {
	const rows = 1_000_000
	ctx := context.Background()
	start := time.Now()
	src := sqldbtest.MustOpenSQLite(b)
	sqldbtest.CreatePosts(b, src, "posts")
	sqldbtest.FillPosts(b, src, "posts", rows)
	// The target starts as a copy whose every row the sync wrote.
	path := filepath.Join(b.TempDir(), "target.db")
	sqldbtest.MustExec(b, src, map[string]string{"sqlite": `VACUUM INTO '` + path + `'`})
	dst, err := sqldb.Open(ctx, "sqlite:"+path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dst.Close() })
	if err := dst.EnsureOwned(ctx); err != nil {
		b.Fatal(err)
	}
	sqldbtest.MustExec(b, dst, map[string]string{"sqlite": `INSERT INTO mooxsync_owned (sync_id, model, key_value) SELECT 7, 'posts', ulid FROM posts`})
	full := fullCopyBytes(b, src)
	b.Logf("dataset: %d rows in %s; a full copy is %d bytes", rows, time.Since(start).Round(time.Second), full)

	f := newFixture(b, src, dst, postsSync)
	d := &drifter{rng: rand.New(rand.NewPCG(1, 2)), rows: rows}
	b.Run("drift=0.1%", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			d.drift(b, dst)
			cpu0 := sqldbtest.CPUTime()
			b.StartTimer()
			rep := f.run(reconcile.Options{})
			b.StopTimer()
			b.ReportMetric((sqldbtest.CPUTime() - cpu0).Seconds(), "cpu-s/op")
			checkCounts(b, "benchmark run", rep, counts{Inserted: drifterDeletes, Updated: drifterEdits, SkippedUnowned: d.own})
			b.ReportMetric(float64(rep.Bytes), "bytes/op")
			b.ReportMetric(100*float64(rep.Bytes)/float64(full), "%full-copy")
			b.ReportMetric(float64(rep.RangesCompared), "ranges/op")
			b.Logf("%s", rep)
			b.StartTimer()
		}
	})
}

// The drift of one benchmark iteration: 0.1% of a million rows.
const (
	drifterEdits   = 400
	drifterDeletes = 300
	drifterInserts = 300
)

// drifter changes rows of the target that no earlier iteration touched.
type drifter struct {
	rng    *rand.Rand
	rows   int
	picked map[int]bool
	iter   int
	own    int64 // the target's own rows so far
}

func (d *drifter) pick() int {
	if d.picked == nil {
		d.picked = map[int]bool{}
	}
	for {
		if i := d.rng.IntN(d.rows); !d.picked[i] {
			d.picked[i] = true
			return i
		}
	}
}

func (d *drifter) drift(b *testing.B, dst *sqldb.DB) {
	ctx := context.Background()
	d.iter++
	write(b, dst, func(w *sqldb.Writer) error {
		for range drifterEdits {
			if _, err := w.Update(ctx, "posts", "ulid", sqldbtest.PostKey(d.pick()), map[string]any{"title": "edited on the target"}); err != nil {
				return err
			}
		}
		for range drifterDeletes {
			if _, err := w.Delete(ctx, "posts", "ulid", sqldbtest.PostKey(d.pick())); err != nil {
				return err
			}
		}
		for i := range drifterInserts {
			row := sqldbtest.PostRow(d.pick())
			row["ulid"] = fmt.Sprintf("%s-own-%d-%d", row["ulid"].(string)[:12], d.iter, i)
			if err := w.Insert(ctx, "posts", row); err != nil {
				return err
			}
		}
		return nil
	})
	d.own += drifterInserts
}

// fullCopyBytes is the JSON size of every source row as a change: what an initial load
// sends.
func fullCopyBytes(b *testing.B, db *sqldb.DB) int64 {
	ctx := context.Background()
	m, err := db.Model(ctx, "posts")
	if err != nil {
		b.Fatal(err)
	}
	var cols []string
	for _, c := range m.Columns {
		cols = append(cols, c.Name)
	}
	var (
		total int64
		batch []protocol.Change
	)
	flush := func() {
		body, err := json.Marshal(batch)
		if err != nil {
			b.Fatal(err)
		}
		total += int64(len(body))
		batch = batch[:0]
	}
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	err = db.Scan(ctx, "posts", "ulid", cols, []sqldb.KeyRange{{}}, false, func(_ int, k string, vals []any) error {
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			row[c] = vals[i]
		}
		batch = append(batch, protocol.Change{EventType: protocol.EventCreated, Model: "posts",
			Key: protocol.Key{Field: "ulid", Value: k}, Data: row, OriginPlatformID: 1, ChangedAt: now})
		if len(batch) == 1000 {
			flush()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	flush()
	return total
}

// BenchmarkInitialLoad100k loads 100,000 existing posts into an empty target (SQLite to
// SQLite, repairs through JSON and apply as in BenchmarkReconcile1M): reconcile with an
// empty target is the initial load.
func BenchmarkInitialLoad100k(b *testing.B) {
	const rows = 100_000
	src := sqldbtest.MustOpenSQLite(b)
	sqldbtest.CreatePosts(b, src, "posts")
	sqldbtest.FillPosts(b, src, "posts", rows)
	b.Run("load", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			dst := sqldbtest.MustOpenSQLite(b)
			sqldbtest.CreatePosts(b, dst, "posts")
			f := newFixture(b, src, dst, postsSync)
			cpu0 := sqldbtest.CPUTime()
			b.StartTimer()
			rep := f.run(reconcile.Options{})
			b.StopTimer()
			checkCounts(b, "initial load", rep, counts{Inserted: rows})
			b.ReportMetric(float64(rows)/rep.End.Sub(rep.Start).Seconds(), "rows/s")
			b.ReportMetric(float64(rep.Bytes)/rows, "bytes/row")
			b.ReportMetric((sqldbtest.CPUTime() - cpu0).Seconds(), "cpu-s/op")
			b.StartTimer()
		}
	})
}
