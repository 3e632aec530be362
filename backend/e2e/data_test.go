package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// sqlOf rewrites the ? placeholders of q for db's dialect.
func sqlOf(db *sqldb.DB, q string) string {
	if db.Dialect().Name() != "postgres" {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString(db.Dialect().Placeholder(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// exec runs one statement with plain SQL, as any client of the application would.
func (p *platform) exec(q string, args ...any) int64 {
	p.f.t.Helper()
	res, err := p.db.SQL().ExecContext(context.Background(), sqlOf(p.db, q), args...)
	if err != nil {
		p.f.t.Fatalf("%s: %s: %v", p.name, q, err)
	}
	n, _ := res.RowsAffected()
	return n
}

// tx runs fn in one transaction of the application database.
func (p *platform) tx(fn func(exec func(q string, args ...any))) {
	t := p.f.t
	t.Helper()
	ctx := context.Background()
	tx, err := p.db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	fn(func(q string, args ...any) {
		t.Helper()
		if _, err := tx.ExecContext(ctx, sqlOf(p.db, q), args...); err != nil {
			_ = tx.Rollback()
			t.Fatalf("%s: %s: %v", p.name, q, err)
		}
	})
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// count returns a single number.
func (p *platform) count(q string, args ...any) int64 {
	p.f.t.Helper()
	var n int64
	if err := p.db.SQL().QueryRowContext(context.Background(), sqlOf(p.db, q), args...).Scan(&n); err != nil {
		p.f.t.Fatalf("%s: %s: %v", p.name, q, err)
	}
	return n
}

// tryCount is count for polling: an error reads as -1.
func (p *platform) tryCount(q string, args ...any) int64 {
	var n int64
	if err := p.db.SQL().QueryRowContext(context.Background(), sqlOf(p.db, q), args...).Scan(&n); err != nil {
		return -1
	}
	return n
}

// createPosts creates the posts table of sqldbtest (auto-increment id, unique ulid, text,
// numbers, boolean, JSON, datetimes) under the given name.
func (p *platform) createPosts(name string) { sqldbtest.CreatePosts(p.f.t, p.db, name) }

// postColumns are the columns the tests write (all but the local id).
const postColumns = "ulid, slug, title, body, views, price, rating, published, meta, published_at, created_at"

// insertPostSQL inserts one post into table.
func insertPostSQL(table string) string {
	return "INSERT INTO " + table + " (" + postColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
}

// ulidOf is the ulid of post i of writer w (a letter, so that writers never collide).
func ulidOf(w byte, i int) string { return fmt.Sprintf("01J%c%022d", w, i) }

var base = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// postValues are the values of post i of writer w, in postColumns order: unicode and
// characters that need escaping, large exact integers, decimals, booleans, JSON documents,
// datetimes with milliseconds, and NULLs.
func postValues(w byte, i int) []any {
	var slug, body, meta any
	if i%7 != 3 {
		slug = fmt.Sprintf("post-%c-%d", w, i)
		body = fmt.Sprintf("Body %d: \"quoted\", 'single', back\\slash, tab\t, newline\n, ü日本 ✓ 🎉", i)
		meta = fmt.Sprintf(`{"tags":["a","b%d"],"n":%d,"nested":{"ok":true,"pi":3.5},"s":"x\"y"}`, i, i)
	}
	published := base.Add(time.Duration(i)*time.Minute + 123*time.Millisecond)
	return []any{
		ulidOf(w, i), slug, fmt.Sprintf("Post %c%d — Grüße", w, i), body,
		int64(9007199254740993) + int64(i), fmt.Sprintf("%d.%02d", 10+i, i%100), 0.25 * float64(i%40),
		i%2 == 0, meta, published, published.Add(-time.Hour),
	}
}

// insertPosts inserts posts from..to-1 of writer w, per transactions of perTx rows.
func (p *platform) insertPosts(table string, w byte, from, to, perTx int) {
	p.f.t.Helper()
	q := insertPostSQL(table)
	for start := from; start < to; start += perTx {
		p.tx(func(exec func(string, ...any)) {
			for i := start; i < min(start+perTx, to); i++ {
				exec(q, postValues(w, i)...)
			}
		})
	}
}

// rows returns every row of table by ulid, in canonical form (sqldb), without the local
// id.
func (p *platform) rows(table string) (map[string]map[string]any, error) {
	ctx := context.Background()
	r, err := p.db.SQL().QueryContext(ctx, "SELECT ulid FROM "+p.db.Dialect().QuoteIdent(table))
	if err != nil {
		return nil, err
	}
	var keys []string
	for r.Next() {
		var k string
		if err := r.Scan(&k); err != nil {
			r.Close()
			return nil, err
		}
		keys = append(keys, k)
	}
	r.Close()
	if err := r.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]map[string]any, len(keys))
	for _, k := range keys {
		row, ok, err := p.db.Get(ctx, table, "ulid", k)
		if err != nil {
			return nil, err
		}
		if ok {
			delete(row, "id")
			out[k] = row
		}
	}
	return out, nil
}

// diffRows compares two row sets and describes the first differences ("" when equal).
func diffRows(want, got map[string]map[string]any) string {
	var diffs []string
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		g, ok := got[k]
		if !ok {
			diffs = append(diffs, "missing "+k)
			continue
		}
		for col, wv := range want[k] {
			if !sameValue(wv, g[col]) {
				diffs = append(diffs, fmt.Sprintf("%s.%s = %#v, want %#v", k, col, g[col], wv))
			}
		}
		for col := range g {
			if _, ok := want[k][col]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s is extra", k, col))
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "extra "+k)
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 12 {
		diffs = append(diffs[:12], fmt.Sprintf("... and %d more", len(diffs)-12))
	}
	return strings.Join(diffs, "; ")
}

// sameValue compares canonical values; numbers by value, since dialects spell a decimal
// differently (12.50 and 12.5), and JSON documents by content.
func sameValue(a, b any) bool {
	if na, ok := a.(json.Number); ok {
		nb, ok := b.(json.Number)
		if !ok {
			return false
		}
		ra, okA := new(big.Rat).SetString(na.String())
		rb, okB := new(big.Rat).SetString(nb.String())
		return okA && okB && ra.Cmp(rb) == 0
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for k := range av {
			if !sameValue(av[k], bv[k]) {
				return false
			}
		}
		return true
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !sameValue(av[i], bv[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// waitSame waits until table holds the same rows on every platform of to as on from.
func waitSame(t *testing.T, timeout time.Duration, from *platform, table string, to ...*platform) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%s.%s arrives", from.name, table), func() (bool, string) {
		want, err := from.rows(table)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range to {
			got, err := p.rows(table)
			if err != nil {
				return false, err.Error()
			}
			if d := diffRows(want, got); d != "" {
				return false, fmt.Sprintf("%d source rows, %s has %d: %s", len(want), p.name, len(got), d)
			}
		}
		return true, ""
	})
}
