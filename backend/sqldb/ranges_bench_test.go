package sqldb_test

import (
	"context"
	"testing"

	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// BenchmarkHashes1MSQLite hashes a 1,000,000-row posts table (11 columns) on SQLite: the
// whole table cut into 1024 ranges, as reconciliation's first level does, in one pass.
func BenchmarkHashes1MSQLite(b *testing.B) {
	const rows = 1_000_000
	db := sqldbtest.MustOpenSQLite(b)
	sqldbtest.CreatePosts(b, db, "posts")
	sqldbtest.FillPosts(b, db, "posts", rows)
	ctx := context.Background()
	bounds, err := db.Split(ctx, "posts", "ulid", sqldb.KeyRange{}, 1024)
	if err != nil {
		b.Fatal(err)
	}
	ranges := make([]sqldb.KeyRange, 0, len(bounds)+1)
	lo := ""
	for _, k := range bounds {
		ranges = append(ranges, sqldb.KeyRange{Lo: lo, Hi: k})
		lo = k
	}
	ranges = append(ranges, sqldb.KeyRange{Lo: lo})
	b.Run("hashes", func(b *testing.B) {
		cpu0 := sqldbtest.CPUTime()
		for range b.N {
			hs, err := db.Hashes(ctx, "posts", "ulid", hashCols, ranges)
			if err != nil {
				b.Fatal(err)
			}
			var n int64
			for _, h := range hs {
				n += h.Count
			}
			if n != rows {
				b.Fatalf("hashed %d rows", n)
			}
		}
		sqldbtest.ReportRows(b, b.N*rows, sqldbtest.CPUTime()-cpu0)
	})
}
