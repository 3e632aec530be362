package e2e_test

import (
	"strings"
	"testing"
	"time"
)

// arrival is how long a few hundred changes may take from the source's commit to the
// target's apply: far more than they need, for a loaded machine.
const arrival = 60 * time.Second

// TestDialectMatrix runs every dialect as source and as target: inserts, updates and
// deletes made with plain SQL on the source arrive identical on the target (every column
// but the local id, compared in canonical form), and both agents report the sync healthy.
func TestDialectMatrix(t *testing.T) {
	pairs := []struct{ from, to string }{
		{"sqlite", "sqlite"}, {"sqlite", "postgres"}, {"sqlite", "mysql"},
		{"postgres", "postgres"}, {"postgres", "mysql"}, {"postgres", "sqlite"},
		{"mysql", "mysql"}, {"mysql", "postgres"}, {"mysql", "sqlite"},
	}
	for _, pair := range pairs {
		t.Run(pair.from+"_to_"+pair.to, func(t *testing.T) {
			t.Parallel()
			limitParallel(t)
			_, src, dst := postsPair(t, pair.from, pair.to, nil)

			// Inserts: one per transaction, and many in one.
			src.insertPosts("posts", 'a', 0, 10, 1)
			src.insertPosts("posts", 'a', 10, 120, 55)
			waitSame(t, arrival, src, "posts", dst)

			// Updates: single rows, many rows in one statement, one row many times, and a
			// change of every kind of column; then deletes, and a row created and deleted in
			// one transaction.
			src.exec(`UPDATE posts SET title = ?, views = views + 1, published = ? WHERE ulid = ?`,
				"Renamed ✓", true, ulidOf('a', 1))
			src.exec(`UPDATE posts SET body = NULL, meta = ?, price = ? WHERE views % 3 = 0`,
				`{"changed":[1,2,3]}`, "99.99")
			for i := range 20 {
				src.exec(`UPDATE posts SET rating = ? WHERE ulid = ?`, float64(i)+0.5, ulidOf('a', 2))
			}
			src.exec(`UPDATE posts SET published_at = ?, created_at = ? WHERE ulid = ?`,
				base.Add(36*time.Hour+456*time.Millisecond), base.Add(-48*time.Hour), ulidOf('a', 3))
			src.exec(`DELETE FROM posts WHERE ulid IN (?, ?, ?)`, ulidOf('a', 4), ulidOf('a', 5), ulidOf('a', 6))
			src.tx(func(exec func(string, ...any)) {
				exec(insertPostSQL("posts"), postValues('z', 1)...)
				exec(`UPDATE posts SET title = ? WHERE ulid = ?`, "short-lived", ulidOf('z', 1))
				exec(`DELETE FROM posts WHERE ulid = ?`, ulidOf('z', 1))
			})
			src.insertPosts("posts", 'b', 0, 5, 1)
			waitSame(t, arrival, src, "posts", dst)
			if n := dst.count(`SELECT COUNT(*) FROM posts`); n != 117+5 {
				t.Fatalf("target holds %d rows, want %d", n, 117+5)
			}

			// Both sides settle: nothing pending, everything sent is applied, no errors.
			waitFor(t, 20*time.Second, "status settles", func() (bool, string) {
				s, d := src.syncStatus(1, "source"), dst.syncStatus(1, "target")
				ok := s.Pending == 0 && d.Pending == 0 && s.Sent > 0 && d.Applied == s.Sent &&
					!s.HasErrors && !d.HasErrors && s.LastSync != nil
				return ok, statusText(s) + " / " + statusText(d)
			})
			for _, p := range []*platform{src, dst} {
				if errs := p.logErrors(); len(errs) > 0 {
					t.Errorf("%s logged errors:\n%s", p.name, strings.Join(errs, "\n"))
				}
			}
		})
	}
}
