package sqldb

// Range hashing: the primitives of reconciliation (backend/reconcile). Two databases
// compare a table by hashing the rows of key ranges, and only the ranges that differ are
// looked at more closely.
//
// Keys are compared as text in byte order (UTF-8 code point order), whatever the database
// and its collations: SQLite compares with COLLATE BINARY, PostgreSQL with COLLATE "C" and
// MySQL as binary strings. A key's text is KeyText of its canonical value (an integer key
// is its decimal text, so 10 sorts before 9). Rows whose key is NULL take no part.
//
// A row's digest is computed in Go from the canonical values this package reads (see the
// package comment), so that SQLite, PostgreSQL and MySQL give the same digest for the same
// logical row; RowHasher documents the exact encoding.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// KeyRange is the keys k with Lo < k <= Hi in byte order. An empty Lo means "from the
// first key" (the empty key included), an empty Hi "to the last key".
type KeyRange struct {
	Lo string
	Hi string
}

// Contains reports whether key k falls in r.
func (r KeyRange) Contains(k string) bool {
	return (r.Lo == "" || k > r.Lo) && (r.Hi == "" || k <= r.Hi)
}

// RangeHash is the digest of the rows of one key range.
type RangeHash struct {
	Lo, Hi string
	Count  int64  // rows in the range
	Hash   Digest // sum of the rows' digests; zero for no rows
}

// KeyHash is one row's key and digest.
type KeyHash struct {
	Key  string
	Hash Digest
}

// ScanFunc receives one row of a scan: r is the index of the range the row falls in, key
// its key text, vals the canonical values of the columns asked for, in their order. vals is
// reused for the next row: copy what must outlive the call.
type ScanFunc func(r int, key string, vals []any) error

// ErrKeyOrder is returned by an ordered scan when the database returned keys out of byte
// order (a key whose text in SQL differs from its canonical text).
var ErrKeyOrder = errors.New("the database returned keys out of byte order")

// maxOrRuns is the most key runs one spanning query filters by in SQL; more runs are
// merged into that many spans and filtered in Go.
const maxOrRuns = 32

// Hashes computes the digest and row count of each range over the projection cols (the
// digest covers the key text and the values of cols, in that order; see RowHasher). ranges
// must be in ascending order and must not overlap. The rows are read in one streaming pass
// per run of adjacent ranges (SQLite with an index on key) or in one query for all of them,
// and hashed in Go: memory does not grow with the number of rows.
func (db *DB) Hashes(ctx context.Context, tableName, key string, cols []string, ranges []KeyRange) ([]RangeHash, error) {
	out := make([]RangeHash, len(ranges))
	for i, r := range ranges {
		out[i].Lo, out[i].Hi = r.Lo, r.Hi
	}
	err := db.ScanDigests(ctx, tableName, key, cols, ranges, false, func(i int, _ string, d Digest) error {
		out[i].Count++
		out[i].Hash = out[i].Hash.Add(d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// KeyHashes returns the key and digest of every row in ranges (see Hashes), sorted by key.
// Its result grows with the rows in ranges: the caller bounds them.
func (db *DB) KeyHashes(ctx context.Context, tableName, key string, cols []string, ranges []KeyRange) ([]KeyHash, error) {
	var out []KeyHash
	err := db.ScanDigests(ctx, tableName, key, cols, ranges, false, func(_ int, k string, d Digest) error {
		out = append(out, KeyHash{Key: k, Hash: d})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b KeyHash) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Rows returns the rows of r in key order, each with the key column and cols, values in
// canonical form. Its result grows with the rows in r: the caller bounds them.
func (db *DB) Rows(ctx context.Context, tableName, key string, cols []string, r KeyRange) ([]map[string]any, error) {
	var out []map[string]any
	err := db.Scan(ctx, tableName, key, cols, []KeyRange{r}, true, func(_ int, k string, vals []any) error {
		row := make(map[string]any, len(cols)+1)
		for i, c := range cols {
			row[c] = vals[i]
		}
		if _, ok := row[key]; !ok {
			row[key] = k
		}
		out = append(out, row)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Count returns the number of rows in r (rows with a NULL key are not counted).
func (db *DB) Count(ctx context.Context, tableName, key string, r KeyRange) (int64, error) {
	p, err := db.planScan(ctx, tableName, key, nil)
	if err != nil {
		return 0, err
	}
	if err := checkRanges([]KeyRange{r}); err != nil {
		return 0, err
	}
	cond, args := p.runCond(r, 1)
	q := "SELECT COUNT(*) FROM " + db.d.QuoteIdent(p.t.name) + " WHERE " + db.d.QuoteIdent(p.kc.Name) + " IS NOT NULL" + cond
	var n int64
	if err := db.sql.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %q: %w", p.t.name, err)
	}
	return n, nil
}

// Split returns up to parts-1 keys that cut r into parts ranges of about equal row counts:
// (r.Lo, b1], (b1, b2], …, (bn, r.Hi]. It counts the rows, then reads their keys in order
// (two queries, memory flat). Fewer boundaries come back when r holds fewer rows than parts.
func (db *DB) Split(ctx context.Context, tableName, key string, r KeyRange, parts int) ([]string, error) {
	n, err := db.Count(ctx, tableName, key, r)
	if err != nil {
		return nil, err
	}
	bounds, err := db.SplitRanges(ctx, tableName, key, []KeyRange{r}, []int64{n}, parts)
	if err != nil {
		return nil, err
	}
	return bounds[0], nil
}

// SplitRanges cuts each of ranges (ascending, not overlapping) into up to parts pieces of
// about counts[i]/parts rows, counts[i] being the rows the caller expects in ranges[i]. It
// returns per range the boundaries b1 < … < bn inside it, so that the pieces are (Lo, b1],
// (b1, b2], …, (bn, Hi]. One ordered pass over the keys alone (SQLite: the key's index only).
func (db *DB) SplitRanges(ctx context.Context, tableName, key string, ranges []KeyRange, counts []int64, parts int) ([][]string, error) {
	if len(counts) != len(ranges) {
		return nil, fmt.Errorf("split %q: %d counts for %d ranges", tableName, len(counts), len(ranges))
	}
	out := make([][]string, len(ranges))
	if parts < 2 {
		return out, nil
	}
	seen := make([]int64, len(ranges))
	err := db.Scan(ctx, tableName, key, nil, ranges, true, func(i int, k string, _ []any) error {
		seen[i]++
		per := max((counts[i]+int64(parts)-1)/int64(parts), 1)
		b := out[i]
		if seen[i]%per == 0 && seen[i] < counts[i] && len(b) < parts-1 && k != "" && k != ranges[i].Hi && (len(b) == 0 || k > b[len(b)-1]) {
			out[i] = append(b, k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Scan streams the rows whose key falls in one of ranges (ascending, not overlapping) to fn,
// with the canonical values of cols. With ordered, rows come in key byte order; otherwise
// in any order. SQLite with a BINARY index on key reads each run of adjacent ranges through
// the index; otherwise one query reads every range (filtered in SQL by up to maxOrRuns spans
// and exactly in Go). Names are checked against the live schema.
func (db *DB) Scan(ctx context.Context, tableName, key string, cols []string, ranges []KeyRange, ordered bool, fn ScanFunc) error {
	return db.scan(ctx, tableName, key, cols, ranges, &scanner{ordered: ordered, fn: fn})
}

// DigestFunc receives one row's range index, key text and digest.
type DigestFunc func(r int, key string, d Digest) error

// ScanDigests streams the digest of every row in ranges (RowHasher over the key text and
// the values of cols), in key byte order when ordered. It encodes values straight from what
// the driver returns, without building canonical values first: it is the fast way to hash.
func (db *DB) ScanDigests(ctx context.Context, tableName, key string, cols []string, ranges []KeyRange, ordered bool, fn DigestFunc) error {
	return db.scan(ctx, tableName, key, cols, ranges, &scanner{ordered: ordered, digest: fn})
}

func (db *DB) scan(ctx context.Context, tableName, key string, cols []string, ranges []KeyRange, s *scanner) error {
	if err := checkRanges(ranges); err != nil {
		return err
	}
	p, err := db.planScan(ctx, tableName, key, cols)
	if err != nil {
		return err
	}
	if len(ranges) == 0 {
		return nil
	}
	s.p, s.ranges = p, ranges
	s.init()
	ordered := s.ordered
	runs := mergeRuns(ranges)
	if p.indexed {
		return s.indexRuns(ctx, db, runs)
	}
	if len(runs) > maxOrRuns {
		runs = spanGroups(runs, maxOrRuns)
	}
	var (
		conds []string
		args  []any
	)
	for _, r := range runs {
		c, a := p.runCondBare(r, len(args)+1)
		if c == "" {
			conds, args = nil, nil // one run covers everything
			break
		}
		conds = append(conds, "("+c+")")
		args = append(args, a...)
	}
	where := ""
	if len(conds) > 0 {
		where = " AND (" + strings.Join(conds, " OR ") + ")"
	}
	return s.query(ctx, db.sql, p.selectSQL(db.d, where, ordered), args)
}

// ScanKeys streams the rows whose key text is one of keys, in no particular order, with the
// canonical values of cols. The look-up compares keys as the database does (through the
// key's index); rows whose key text is not exactly one of keys are left out.
func (db *DB) ScanKeys(ctx context.Context, tableName, key string, cols []string, keys []string, fn func(key string, vals []any) error) error {
	p, err := db.planScan(ctx, tableName, key, cols)
	if err != nil {
		return err
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	s := &scanner{p: p, fn: func(_ int, k string, vals []any) error {
		if !want[k] {
			return nil
		}
		return fn(k, vals)
	}}
	s.init()
	const chunk = 500
	f := db.d.flavor()
	for start := 0; start < len(keys); start += chunk {
		args := make([]any, 0, chunk)
		var b strings.Builder
		for _, k := range keys[start:min(start+chunk, len(keys))] {
			if p.kc.kind == kindInt {
				if _, err := strconv.ParseInt(k, 10, 64); err != nil {
					continue // no integer has this text
				}
			}
			a, err := bind(f, p.kc, k)
			if err != nil {
				return err
			}
			args = append(args, a)
			if len(args) > 1 {
				b.WriteString(", ")
			}
			b.WriteString(db.d.Placeholder(len(args)))
		}
		if len(args) == 0 {
			continue
		}
		where := " AND " + db.d.QuoteIdent(p.kc.Name) + " IN (" + b.String() + ")"
		if err := s.query(ctx, db.sql, p.selectSQL(db.d, where, false), args); err != nil {
			return err
		}
	}
	return nil
}

// KeyText is the text of a canonical key value that ranges compare and mooxsync_owned
// stores: a string as it is, a number as its decimal text.
func KeyText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		if x {
			return "1"
		}
		return "0"
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// checkRanges requires ranges in ascending order, not overlapping, each with Lo < Hi.
func checkRanges(ranges []KeyRange) error {
	for i, r := range ranges {
		if r.Lo != "" && r.Hi != "" && r.Lo >= r.Hi {
			return protocol.Errorf(protocol.CodeBadRequest, "range %d: lo %q is not below hi %q", i, truncate(r.Lo, 40), truncate(r.Hi, 40))
		}
		if i == 0 {
			continue
		}
		prev := ranges[i-1]
		if prev.Hi == "" || r.Lo == "" || r.Lo < prev.Hi {
			return protocol.Errorf(protocol.CodeBadRequest, "range %d overlaps range %d or is out of order", i, i-1)
		}
	}
	return nil
}

// mergeRuns joins adjacent ranges (one's Hi is the next one's Lo) into runs.
func mergeRuns(ranges []KeyRange) []KeyRange {
	runs := make([]KeyRange, 0, len(ranges))
	for _, r := range ranges {
		if n := len(runs); n > 0 && runs[n-1].Hi == r.Lo {
			runs[n-1].Hi = r.Hi
			continue
		}
		runs = append(runs, r)
	}
	return runs
}

// spanGroups merges runs into n spans of consecutive runs.
func spanGroups(runs []KeyRange, n int) []KeyRange {
	out := make([]KeyRange, 0, n)
	for g := range n {
		first, last := g*len(runs)/n, (g+1)*len(runs)/n-1
		if last < first {
			continue
		}
		out = append(out, KeyRange{Lo: runs[first].Lo, Hi: runs[last].Hi})
	}
	return out
}

// findRange returns the index of the range holding k, or -1.
func findRange(ranges []KeyRange, k string) int {
	i := sort.Search(len(ranges), func(i int) bool { return ranges[i].Hi == "" || k <= ranges[i].Hi })
	if i == len(ranges) || !ranges[i].Contains(k) {
		return -1
	}
	return i
}

// scanPlan is a checked table, key and projection, with the SQL expression that orders keys
// in byte order.
type scanPlan struct {
	d       dialect
	t       *table
	kc      *column
	cols    []*column
	expr    string // the key as byte-ordered text
	indexed bool   // SQLite: a BINARY index on the key serves range reads
}

func (db *DB) planScan(ctx context.Context, tableName, key string, cols []string) (*scanPlan, error) {
	t, err := db.table(ctx, db.sql, tableName)
	if err != nil {
		return nil, err
	}
	p := &scanPlan{d: db.d}
	if t, p.kc, err = db.columnOf(ctx, db.sql, t, key); err != nil {
		return nil, err
	}
	p.cols = make([]*column, len(cols))
	for i, name := range cols {
		if t, p.cols[i], err = db.columnOf(ctx, db.sql, t, name); err != nil {
			return nil, err
		}
	}
	// Resolve everything against the last snapshot, in case the table was read again.
	p.t, p.kc = t, t.byName[p.kc.Name]
	for i, c := range p.cols {
		p.cols[i] = t.byName[c.Name]
	}
	q := db.d.QuoteIdent(p.kc.Name)
	switch db.d.flavor() {
	case flavorSQLite:
		if p.kc.kind == kindText {
			p.expr = q + " COLLATE BINARY"
			var n int
			err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_index_list(?) AS l
				JOIN pragma_index_xinfo(l.name) AS x
				WHERE l.partial = 0 AND x.seqno = 0 AND x.name = ? AND x.coll = 'BINARY'`, t.name, p.kc.Name).Scan(&n)
			if err != nil {
				return nil, fmt.Errorf("indexes of %q: %w", t.name, err)
			}
			p.indexed = n > 0
		} else {
			p.expr = "CAST(" + q + " AS TEXT)"
		}
	case flavorPostgres:
		typ := strings.ToLower(p.kc.Type)
		if strings.HasPrefix(typ, "text") || strings.HasPrefix(typ, "character varying") {
			p.expr = q + ` COLLATE "C"`
		} else {
			p.expr = "CAST(" + q + ` AS TEXT) COLLATE "C"`
		}
	default:
		p.expr = "CAST(CONVERT(" + q + " USING utf8mb4) AS BINARY)"
	}
	return p, nil
}

// selectSQL reads the key and the columns of rows with a key, filtered by where.
func (p *scanPlan) selectSQL(d Dialect, where string, ordered bool) string {
	var b strings.Builder
	b.WriteString("SELECT " + d.QuoteIdent(p.kc.Name))
	for _, c := range p.cols {
		b.WriteString(", ")
		if p.d.flavor() == flavorSQLite && isDatetimeKind(c.kind) {
			// An expression has no declared type: the driver returns the stored text
			// instead of parsing it into a time.Time by trial and error (slow).
			b.WriteString("+")
		}
		b.WriteString(d.QuoteIdent(c.Name))
	}
	b.WriteString(" FROM " + d.QuoteIdent(p.t.name) + " WHERE " + d.QuoteIdent(p.kc.Name) + " IS NOT NULL" + where)
	if ordered {
		b.WriteString(" ORDER BY " + p.expr)
	}
	return b.String()
}

// runCondBare is the SQL condition of r on the key expression ("" for an unbounded r), with
// placeholders numbered from n.
func (p *scanPlan) runCondBare(r KeyRange, n int) (string, []any) {
	var (
		conds []string
		args  []any
	)
	if r.Lo != "" {
		conds = append(conds, p.expr+" > "+p.d.Placeholder(n))
		args = append(args, r.Lo)
		n++
	}
	if r.Hi != "" {
		conds = append(conds, p.expr+" <= "+p.d.Placeholder(n))
		args = append(args, r.Hi)
	}
	return strings.Join(conds, " AND "), args
}

// runCond is runCondBare as an " AND …" suffix.
func (p *scanPlan) runCond(r KeyRange, n int) (string, []any) {
	c, args := p.runCondBare(r, n)
	if c == "" {
		return "", nil
	}
	return " AND " + c, args
}

// scanner turns query results into ScanFunc calls, or (with digest set) into row digests.
type scanner struct {
	p       *scanPlan
	ranges  []KeyRange // nil: every row goes to range 0
	ordered bool
	fn      ScanFunc
	// digest, when set, receives each row's digest instead of fn its values: the values
	// are encoded straight from what the driver returned (appendRawCanonical).
	digest DigestFunc
	buf    []byte

	raw, ptrs, vals []any
	prev            string
	started         bool
}

func (s *scanner) init() {
	s.raw = make([]any, len(s.p.cols)+1)
	s.ptrs = make([]any, len(s.raw))
	for i := range s.raw {
		s.ptrs[i] = &s.raw[i]
	}
	s.vals = make([]any, len(s.p.cols))
}

// indexRuns reads each run with its own query through the key's index.
func (s *scanner) indexRuns(ctx context.Context, db *DB, runs []KeyRange) error {
	stmts := map[[2]bool]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	for _, r := range runs {
		shape := [2]bool{r.Lo != "", r.Hi != ""}
		cond, args := s.p.runCond(r, 1)
		st := stmts[shape]
		if st == nil {
			var err error
			if st, err = db.sql.PrepareContext(ctx, s.p.selectSQL(db.d, cond, s.ordered)); err != nil {
				return fmt.Errorf("scan %q: %w", s.p.t.name, err)
			}
			stmts[shape] = st
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("scan %q: %w", s.p.t.name, err)
		}
		if err := s.read(rows); err != nil {
			return err
		}
	}
	return nil
}

func (s *scanner) query(ctx context.Context, q querier, query string, args []any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("scan %q: %w", s.p.t.name, err)
	}
	return s.read(rows)
}

// read consumes rows and closes them.
func (s *scanner) read(rows *sql.Rows) error {
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(s.ptrs...); err != nil {
			return fmt.Errorf("scan %q: %w", s.p.t.name, err)
		}
		k, ok := rawKeyText(s.p.kc, s.raw[0])
		if !ok {
			continue
		}
		r := 0
		if s.ranges != nil {
			if r = findRange(s.ranges, k); r < 0 {
				continue
			}
		}
		if s.ordered {
			if s.started && k < s.prev {
				return fmt.Errorf("scan %q: key %q after %q: %w", s.p.t.name, truncate(k, 40), truncate(s.prev, 40), ErrKeyOrder)
			}
			s.prev, s.started = k, true
		}
		if s.digest != nil {
			b := appendText(s.buf[:0], k)
			for i, c := range s.p.cols {
				b = appendRawCanonical(b, c, s.raw[i+1])
			}
			s.buf = b
			if err := s.digest(r, k, digestOf(b)); err != nil {
				return err
			}
			continue
		}
		for i, c := range s.p.cols {
			s.vals[i] = normalize(c, scanned(c, s.raw[i+1]), fromScan)
		}
		if err := s.fn(r, k, s.vals); err != nil {
			return err
		}
	}
	if err := closeRows(rows); err != nil {
		return fmt.Errorf("scan %q: %w", s.p.t.name, err)
	}
	return nil
}
