package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// rowsPerStatement are the sizes of multi-row statements, largest first: a run is cut into
// statements of these sizes only, so that few distinct statements are ever prepared.
// Larger ones gain nothing measurable on SQLite and make PostgreSQL plan longer.
var rowsPerStatement = []int{100, 10, 1}

// manyScratch is the reusable state for one multi-row statement.
type manyScratch struct {
	args []any
	keys []string // canonical key of each row, for counting
	seen map[string]bool
	// existing is set when a recent chunk met existing rows: SQLite then looks the keys up
	// before it upserts, instead of trying a plain insert first.
	existing bool
}

// ignoreSQL builds an INSERT of n rows that skips rows whose key exists, or "".
func ignoreSQL(d dialect, t *table, kc *column, cols []*column, n int) string {
	clause := d.ignoreClause(t, kc)
	if clause == "" {
		return ""
	}
	return insertRowsSQL(d, t, cols, n) + " " + clause
}

// Upsert writes row into the table, matching an existing row by the key column, whose
// value must be in row. It reports whether the row was inserted (else it was updated, or
// already had these values). With a unique index on the key it is race-free; without one
// it updates every row with that key, or inserts when there is none.
func (w *Writer) Upsert(ctx context.Context, tableName, key string, row map[string]any) (inserted bool, err error) {
	t, kc, cols, err := w.resolve(ctx, tableName, key, row, true)
	if err != nil {
		return false, err
	}
	return w.upsertOne(ctx, t, kc, cols, valuesOf(cols, row))
}

// UpsertMany upserts rows in order, with the same outcome as Upsert row by row, grouping
// consecutive rows with the same columns as UpsertRows does. It returns how many rows it
// inserted and how many it updated (or found with the same values already).
func (w *Writer) UpsertMany(ctx context.Context, tableName, key string, rows []map[string]any) (inserted, updated int, err error) {
	for start := 0; start < len(rows); {
		t, kc, cols, err := w.resolve(ctx, tableName, key, rows[start], true)
		if err != nil {
			return inserted, updated, err
		}
		cols = slices.Clone(cols)
		values := [][]any{valuesOf(cols, rows[start])}
		end := start + 1
		for ; end < len(rows) && sameColumns(rows[end], cols); end++ {
			values = append(values, valuesOf(cols, rows[end]))
		}
		ins, upd, err := w.upsertRun(ctx, t, kc, cols, values)
		inserted += ins
		updated += upd
		if err != nil {
			return inserted, updated, err
		}
		start = end
	}
	return inserted, updated, nil
}

// UpsertRows upserts rows given as values in the order of columns (each values[i] has one
// value per column, and key is one of the columns), in order, with the same outcome as
// Upsert row by row. Where the table has a unique index on key it uses multi-row
// statements. It returns how many rows it inserted and how many it updated (or found with
// the same values already). Counts are exact on SQLite and PostgreSQL; on MySQL they rest
// on a look-up before each statement and may be off when another session writes the same
// keys at the same time (the rows themselves are right).
func (w *Writer) UpsertRows(ctx context.Context, tableName, key string, columns []string, values [][]any) (inserted, updated int, err error) {
	if len(values) == 0 {
		return 0, 0, nil
	}
	t, err := w.table(ctx, tableName)
	if err != nil {
		return 0, 0, err
	}
	cols := make([]*column, len(columns))
	for i, name := range columns {
		if t, cols[i], err = w.column(ctx, t, name); err != nil {
			return 0, 0, err
		}
		if slices.Contains(cols[:i], cols[i]) {
			return 0, 0, protocol.Errorf(protocol.CodeBadRequest, "column %q given twice", name)
		}
	}
	for i, c := range cols {
		cols[i] = t.byName[c.Name] // all against the last snapshot, if the table was re-read
	}
	ki := slices.Index(columns, key)
	if ki < 0 {
		return 0, 0, protocol.Errorf(protocol.CodeBadRequest, "rows for %q have no value for their key %q", tableName, key)
	}
	for _, v := range values {
		if len(v) != len(cols) {
			return 0, 0, protocol.Errorf(protocol.CodeBadRequest, "a row for %q has %d values for %d columns", tableName, len(v), len(cols))
		}
	}
	return w.upsertRun(ctx, t, cols[ki], cols, values)
}

func valuesOf(cols []*column, row map[string]any) []any {
	vals := make([]any, len(cols))
	for i, c := range cols {
		vals[i] = row[c.Name]
	}
	return vals
}

func sameColumns(row map[string]any, cols []*column) bool {
	if len(row) != len(cols) {
		return false
	}
	for _, c := range cols {
		if _, ok := row[c.Name]; !ok {
			return false
		}
	}
	return true
}

// upsertOne upserts one row of vals for cols.
func (w *Writer) upsertOne(ctx context.Context, t *table, kc *column, cols []*column, vals []any) (bool, error) {
	if err := w.bindValues(cols, vals); err != nil {
		return false, err
	}
	keyArg := w.args[slices.Index(cols, kc)]
	d := w.db.d
	if d.flavor() == flavorSQLite {
		// Insert or nothing, then update: one statement for a new row, and exact counts
		// (SQLite's upsert does not tell an insert from an update).
		p, err := w.prepare(ctx, opInsertIgnore, t, kc, cols, 1, func() (string, bool) { return ignoreSQL(d, t, kc, cols, 1), false })
		if err != nil {
			return false, err
		}
		if p.stmt != nil {
			n, err := execN(ctx, p.stmt, w.args)
			if err != nil || n == 1 {
				return n == 1, w.wrap("upsert into", t, err)
			}
			_, err = w.update(ctx, t, kc, cols, keyArg)
			return false, err
		}
	} else {
		p, err := w.prepare(ctx, opUpsert, t, kc, cols, 1, func() (string, bool) {
			clause, returning := d.upsertClause(t, kc, cols)
			if clause == "" {
				return "", false
			}
			return insertSQL(d, t, cols) + " " + clause, returning
		})
		if err != nil {
			return false, err
		}
		switch {
		case p.stmt != nil && p.returning:
			var ins bool
			err := p.stmt.QueryRowContext(ctx, w.args...).Scan(&ins)
			if errors.Is(err, sql.ErrNoRows) {
				return false, nil // the row exists with these values
			}
			return ins, w.wrap("upsert into", t, err)
		case p.stmt != nil:
			// MySQL's RowsAffected: 1 inserted, 2 updated, 0 unchanged.
			n, err := execN(ctx, p.stmt, w.args)
			return n == 1, w.wrap("upsert into", t, err)
		}
	}
	// No unique index to lean on: update, else insert.
	n, err := w.update(ctx, t, kc, cols, keyArg)
	if err != nil || n > 0 {
		return false, err
	}
	if d.flavor() == flavorMySQL {
		// MySQL counts changed rows, not matched ones: 0 may mean "same values".
		if ok, err := w.existsArg(ctx, t, kc, keyArg); err != nil || ok {
			return false, err
		}
	}
	return true, w.insert(ctx, t, cols)
}

// upsertRun upserts rows of values for cols, in order.
func (w *Writer) upsertRun(ctx context.Context, t *table, kc *column, cols []*column, values [][]any) (ins, upd int, err error) {
	d := w.db.d
	clause, returning := d.upsertClause(t, kc, cols)
	if clause == "" || len(values) == 1 {
		for _, vals := range values {
			inserted, err := w.upsertOne(ctx, t, kc, cols, vals)
			if err != nil {
				return ins, upd, err
			}
			if inserted {
				ins++
			} else {
				upd++
			}
		}
		return ins, upd, nil
	}
	per := min(rowsPerStatement[0], d.maxParams()/len(cols))
	ki := slices.Index(cols, kc)
	m := &w.many
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	defer func() {
		m.args, m.keys = m.args[:0], m.keys[:0]
		clear(m.seen)
	}()
	flush := func() error {
		nc := len(cols)
		for off := 0; off < len(m.keys); {
			n := 1
			for _, size := range rowsPerStatement {
				if size <= per && size <= len(m.keys)-off {
					n = size
					break
				}
			}
			i, u, err := w.upsertChunk(ctx, t, kc, cols, clause, returning, m.args[off*nc:(off+n)*nc], m.keys[off:off+n], ki)
			ins += i
			upd += u
			if err != nil {
				return err
			}
			off += n
		}
		m.args, m.keys = m.args[:0], m.keys[:0]
		clear(m.seen)
		return nil
	}
	f := d.flavor()
	for _, vals := range values {
		kv, err := bind(f, kc, vals[ki])
		if err != nil {
			return ins, upd, err
		}
		k := keyString(kv)
		// A key twice in one statement: PostgreSQL refuses it, and the counts need one row per key.
		if m.seen[k] || len(m.keys) == per {
			if err := flush(); err != nil {
				return ins, upd, err
			}
		}
		for i, c := range cols {
			if i == ki {
				m.args = append(m.args, kv)
				continue
			}
			v, err := bind(f, c, vals[i])
			if err != nil {
				return ins, upd, err
			}
			m.args = append(m.args, v)
		}
		m.keys = append(m.keys, k)
		m.seen[k] = true
	}
	return ins, upd, flush()
}

// upsertChunk runs one multi-row upsert of len(keys) rows bound in args.
func (w *Writer) upsertChunk(ctx context.Context, t *table, kc *column, cols []*column, clause string, returning bool, args []any, keys []string, ki int) (ins, upd int, err error) {
	n := len(keys)
	if !returning && !w.many.existing && w.db.d.flavor() == flavorSQLite {
		return w.insertFirstChunk(ctx, t, kc, cols, clause, args, n)
	}
	var existing map[string]bool
	if !returning {
		keyArgs := make([]any, n)
		for i := range n {
			keyArgs[i] = args[i*len(cols)+ki]
		}
		if existing, err = w.keysIn(ctx, t, kc, keyArgs); err != nil {
			return 0, 0, err
		}
	}
	p, err := w.prepare(ctx, opUpsertMany, t, kc, cols, n, func() (string, bool) {
		return insertRowsSQL(w.db.d, t, cols, n) + " " + clause, returning
	})
	if err != nil {
		return 0, 0, err
	}
	if !returning {
		if _, err := p.stmt.ExecContext(ctx, args...); err != nil {
			return 0, 0, w.wrap("upsert into", t, err)
		}
		for _, k := range keys {
			if existing[k] {
				upd++
			} else {
				ins++
			}
		}
		w.many.existing = upd > 0
		return ins, upd, nil
	}
	rs, err := p.stmt.QueryContext(ctx, args...)
	if err != nil {
		return 0, 0, w.wrap("upsert into", t, err)
	}
	for rs.Next() {
		var inserted bool
		if err := rs.Scan(&inserted); err != nil {
			rs.Close()
			return 0, 0, w.wrap("upsert into", t, err)
		}
		if inserted {
			ins++
		}
	}
	if err := closeRows(rs); err != nil {
		return 0, 0, w.wrap("upsert into", t, err)
	}
	return ins, n - ins, nil
}

// insertFirstChunk writes n rows on SQLite by inserting those whose key is new (the count
// of that is exact), then, only if some keys existed, upserting the whole chunk: the rows
// just inserted are rewritten with the values they have. A stream of new rows (the common
// case of created events and backfills) so costs one statement per chunk and no look-up.
func (w *Writer) insertFirstChunk(ctx context.Context, t *table, kc *column, cols []*column, clause string, args []any, n int) (ins, upd int, err error) {
	p, err := w.prepare(ctx, opInsertIgnoreMany, t, kc, cols, n, func() (string, bool) { return ignoreSQL(w.db.d, t, kc, cols, n), false })
	if err != nil {
		return 0, 0, err
	}
	added, err := execN(ctx, p.stmt, args)
	if err != nil {
		return 0, 0, w.wrap("insert into", t, err)
	}
	if int(added) == n {
		return n, 0, nil
	}
	w.many.existing = true
	p, err = w.prepare(ctx, opUpsertMany, t, kc, cols, n, func() (string, bool) {
		return insertRowsSQL(w.db.d, t, cols, n) + " " + clause, false
	})
	if err != nil {
		return 0, 0, err
	}
	if _, err := p.stmt.ExecContext(ctx, args...); err != nil {
		return 0, 0, w.wrap("upsert into", t, err)
	}
	return int(added), n - int(added), nil
}

// keysIn returns the canonical keys among keyArgs that exist in t.
func (w *Writer) keysIn(ctx context.Context, t *table, kc *column, keyArgs []any) (map[string]bool, error) {
	n := len(keyArgs)
	p, err := w.prepare(ctx, opKeysIn, t, kc, nil, n, func() (string, bool) { return inSQL(w.db.d, t, kc, n), false })
	if err != nil {
		return nil, err
	}
	rs, err := p.stmt.QueryContext(ctx, keyArgs...)
	if err != nil {
		return nil, w.wrap("look up in", t, err)
	}
	found := make(map[string]bool, n)
	for rs.Next() {
		var v any
		if err := rs.Scan(&v); err != nil {
			rs.Close()
			return nil, w.wrap("look up in", t, err)
		}
		found[keyString(v)] = true
	}
	return found, w.wrap("look up in", t, closeRows(rs))
}

// keyString renders a bound or scanned key value comparably.
func keyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return FormatDatetime(x)
	}
	return fmt.Sprint(v)
}
