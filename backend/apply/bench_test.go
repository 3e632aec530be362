package apply_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/apply"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// benchBody is the JSON body of a batch of n created posts with keys prefix-0 …
// prefix-(n-1), as the webhook receives it.
func benchBody(b *testing.B, id, prefix string, n int) []byte {
	changes := make([]map[string]any, n)
	for i := range changes {
		ulid := fmt.Sprintf("%s-%06d", prefix, i)
		changes[i] = created(ulid, map[string]any{
			"id": i + 1, "slug": "post-" + ulid, "title": "Post " + ulid, "body": "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
			"views": i, "price": "19.99", "rating": 4.5, "published": i%2 == 0,
			"published_at": "2026-11-26T12:00:00Z", "created_at": "2026-11-26 12:00:00",
		})
	}
	body, err := json.Marshal(map[string]any{"batch_id": id, "source_platform_id": 1, "sync_id": 7, "changes": changes})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkUpsertSQLite applies batches of 1000 posts (12 columns, two unique indexes), one
// transaction each, to a SQLite file: "insert" with new keys every batch, "update"
// rewriting the same 1000 rows with new values. Decoding the batches is not measured; the
// CPU metric counts the whole process (GC included) during ApplyBatch only.
func BenchmarkUpsertSQLite(b *testing.B) { benchmarkUpsert(b, "sqlite") }

// BenchmarkUpsertPostgres is BenchmarkUpsertSQLite on PostgreSQL (CPU: this process only).
func BenchmarkUpsertPostgres(b *testing.B) { benchmarkUpsert(b, "postgres") }

// BenchmarkUpsertMySQL is BenchmarkUpsertSQLite on MySQL/MariaDB (CPU: this process only).
func BenchmarkUpsertMySQL(b *testing.B) { benchmarkUpsert(b, "mysql") }

func benchmarkUpsert(b *testing.B, dialect string) {
	const rows = 1000
	for _, mode := range []string{"insert", "update"} {
		b.Run(mode, func(b *testing.B) {
			db := sqldbtest.MustOpen(b, dialect)
			sqldbtest.CreatePosts(b, db, "posts")
			a := apply.New(db, apply.Config{})
			ctx := context.Background()
			bodies := make([][]byte, b.N)
			for i := range bodies {
				prefix := fmt.Sprintf("b%06d", i)
				if mode == "update" {
					prefix = "same"
				}
				bodies[i] = benchBody(b, fmt.Sprintf("batch-%d", i), prefix, rows)
			}
			if mode == "update" {
				warm, err := protocol.DecodeBatch(benchBody(b, "warm", "same", rows))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := a.ApplyBatch(ctx, postsSync, warm); err != nil {
					b.Fatal(err)
				}
			}
			var cpu time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				batch, err := protocol.DecodeBatch(bodies[i])
				if err != nil {
					b.Fatal(err)
				}
				if mode == "update" {
					for j := range batch.Changes {
						batch.Changes[j].Data["views"] = json.Number(fmt.Sprint(i))
					}
				}
				b.StartTimer()
				cpu0 := sqldbtest.CPUTime()
				res, err := a.ApplyBatch(ctx, postsSync, batch)
				cpu += sqldbtest.CPUTime() - cpu0
				if err != nil {
					b.Fatal(err)
				}
				if want := (apply.Result{Inserted: rows}); mode == "insert" && res != want {
					b.Fatalf("result %+v", res)
				}
			}
			sqldbtest.ReportRows(b, b.N*rows, cpu)
		})
	}
}
