package sqldbtest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// PostKey is the ulid FillPosts gives post i: 26 characters whose byte order is not the
// order of i (as real ulids and uuids of rows written by many clients are not).
func PostKey(i int) string {
	return fmt.Sprintf("01J%010X%013d", (int64(i)*2654435761)%(1<<40), i)
}

const fillBody = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore."

// PostRow is the row FillPosts writes for post i (without the auto-increment id).
func PostRow(i int) map[string]any {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second).Format(time.RFC3339)
	return map[string]any{
		"ulid": PostKey(i), "slug": "post-" + strconv.Itoa(i), "title": "Post number " + strconv.Itoa(i),
		"body": fillBody, "views": json.Number(strconv.Itoa(i * 7 % 100000)),
		"price":        json.Number(strconv.FormatFloat(float64(i%10000)/100, 'f', -1, 64)),
		"rating":       json.Number(strconv.FormatFloat(float64(i%50)/10, 'f', -1, 64)),
		"published":    i%2 == 1,
		"meta":         map[string]any{"tags": []any{"news", "go"}, "n": json.Number(strconv.Itoa(i))},
		"published_at": at, "created_at": at,
	}
}

// FillPosts adds posts 0 … n-1 (PostRow) to a table CreatePosts made. On SQLite one
// INSERT … SELECT generates them (a million rows in a few seconds); elsewhere they go
// through Writer.UpsertMany in transactions of 10,000 rows.
func FillPosts(tb testing.TB, db *sqldb.DB, table string, n int) {
	tb.Helper()
	ctx := context.Background()
	q := db.Dialect().QuoteIdent(table)
	if db.Dialect().Name() == "sqlite" {
		MustExec(tb, db, map[string]string{"sqlite": `WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ` + strconv.Itoa(n) + `)
			INSERT INTO ` + q + ` (ulid, slug, title, body, views, price, rating, published, meta, published_at, created_at)
			SELECT printf('01J%010X%013d', (i * 2654435761) % 1099511627776, i), 'post-' || i, 'Post number ' || i,
				'` + fillBody + `', i * 7 % 100000, (i % 10000) / 100.0, (i % 50) / 10.0, i % 2,
				'{"tags":["news","go"],"n":' || i || '}',
				strftime('%Y-%m-%d %H:%M:%S', '2026-01-01', '+' || i || ' seconds'),
				strftime('%Y-%m-%d %H:%M:%S', '2026-01-01', '+' || i || ' seconds')
			FROM seq`})
		// Leave the file as a live database's usually is: checkpointed, not a WAL as big as itself.
		MustExec(tb, db, map[string]string{"sqlite": `PRAGMA wal_checkpoint(TRUNCATE)`})
		return
	}
	const per = 10_000
	for start := 0; start < n; start += per {
		rows := make([]map[string]any, 0, per)
		for i := start; i < min(start+per, n); i++ {
			rows = append(rows, PostRow(i))
		}
		w, err := db.BeginWrite(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if _, _, err := w.UpsertMany(ctx, table, "ulid", rows); err != nil {
			w.Rollback()
			tb.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}
