package sqldb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// BenchmarkWriter_UpsertManySQLite upserts 1000 new posts per transaction through
// Writer.UpsertMany, the path apply takes for runs of upserts.
func BenchmarkWriter_UpsertManySQLite(b *testing.B) {
	db := sqldbtest.MustOpenSQLite(b)
	sqldbtest.CreatePosts(b, db, "posts")
	ctx := context.Background()
	const per = 1000
	rows := make([][]map[string]any, b.N)
	for i := range rows {
		rows[i] = make([]map[string]any, per)
		for j := range rows[i] {
			u := fmt.Sprintf("b%06d-%06d", i, j)
			rows[i][j] = map[string]any{
				"ulid": u, "slug": "post-" + u, "title": "Post " + u, "body": "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
				"views": json.Number("12"), "price": json.Number("19.99"), "rating": json.Number("4.5"), "published": true,
				"published_at": "2026-11-26T12:00:00Z", "created_at": "2026-11-26 12:00:00",
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := sqldbtest.CPUTime()
	for i := range b.N {
		w, err := db.BeginWrite(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if ins, _, err := w.UpsertMany(ctx, "posts", "ulid", rows[i]); err != nil || ins != per {
			b.Fatal(ins, err)
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	sqldbtest.ReportRows(b, b.N*per, sqldbtest.CPUTime()-cpu0)
}
