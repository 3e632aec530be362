package sqldb_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// insertPosts inserts n posts with ulids prefix-0..n-1 in one statement.
func insertPosts(t *testing.T, db *sqldb.DB, prefix string, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("INSERT INTO posts (ulid, title) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "('%s-%d', 'title %d')", prefix, i, i)
	}
	sqldbtest.MustExec(t, db, map[string]string{"": b.String()})
}

func outboxSeqs(t *testing.T, db *sqldb.DB) []int64 {
	t.Helper()
	rows, err := db.ReadChanges(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	seqs := make([]int64, len(rows))
	for i, r := range rows {
		seqs[i] = r.Seq
	}
	return seqs
}

func TestDB_DeleteChanges(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		if err := db.InstallTriggers(ctx, "posts"); err != nil {
			t.Fatal(err)
		}
		if n, err := db.DeleteChanges(ctx, nil); err != nil || n != 0 {
			t.Fatalf("DeleteChanges(nil) = %d, %v", n, err)
		}

		t.Run("exact seqs, unsorted, with duplicates", func(t *testing.T) {
			insertPosts(t, db, "a", 10)
			seqs := outboxSeqs(t, db)
			if len(seqs) != 10 {
				t.Fatalf("outbox holds %d rows, want 10", len(seqs))
			}
			del := []int64{seqs[7], seqs[0], seqs[1], seqs[2], seqs[4], seqs[8], seqs[1]}
			n, err := db.DeleteChanges(ctx, del)
			if err != nil {
				t.Fatal(err)
			}
			if n != 6 {
				t.Errorf("deleted %d rows, want 6", n)
			}
			want := []int64{seqs[3], seqs[5], seqs[6], seqs[9]}
			if got := outboxSeqs(t, db); !slices.Equal(got, want) {
				t.Errorf("left %v, want %v", got, want)
			}
			if _, err := db.DeleteChanges(ctx, want); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("a seq between deleted runs is kept", func(t *testing.T) {
			insertPosts(t, db, "b", 5)
			seqs := outboxSeqs(t, db)
			// Two runs around seqs[2]: a range delete from seqs[0] to seqs[4] would drop it.
			if _, err := db.DeleteChanges(ctx, []int64{seqs[0], seqs[1], seqs[3], seqs[4]}); err != nil {
				t.Fatal(err)
			}
			if got := outboxSeqs(t, db); !slices.Equal(got, []int64{seqs[2]}) {
				t.Errorf("left %v, want [%d]", got, seqs[2])
			}
			if _, err := db.DeleteChanges(ctx, []int64{seqs[2]}); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("many runs span several statements", func(t *testing.T) {
			insertPosts(t, db, "c", 2500)
			seqs := outboxSeqs(t, db)
			var even, odd []int64
			for i, s := range seqs {
				if i%2 == 0 {
					even = append(even, s)
				} else {
					odd = append(odd, s)
				}
			}
			n, err := db.DeleteChanges(ctx, even)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(even)) {
				t.Errorf("deleted %d rows, want %d", n, len(even))
			}
			if got := outboxSeqs(t, db); !slices.Equal(got, odd) {
				t.Errorf("left %d rows, want the %d odd ones", len(got), len(odd))
			}
			if _, err := db.DeleteChanges(ctx, odd); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func TestDB_CountChanges(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		sqldbtest.CreatePosts(t, db, "pages")
		if err := db.EnsureOutbox(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := db.CountChanges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Fatalf("empty outbox: %v", got)
		}
		for _, tn := range []string{"posts", "pages"} {
			if err := db.InstallTriggers(ctx, tn); err != nil {
				t.Fatal(err)
			}
		}
		before := time.Now().Add(-time.Minute)
		insertPosts(t, db, "p", 3)
		sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO pages (ulid) VALUES ('x')`})
		got, err = db.CountChanges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got["posts"].Count != 3 || got["pages"].Count != 1 || len(got) != 2 {
			t.Fatalf("CountChanges = %+v", got)
		}
		for m, c := range got {
			if c.Oldest.Before(before) || c.Oldest.After(time.Now().Add(time.Minute)) {
				t.Errorf("%s: oldest %v is not about now", m, c.Oldest)
			}
		}
	})
}
