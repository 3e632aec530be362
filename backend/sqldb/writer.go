package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// Writer writes rows inside one transaction. Every table and column name is checked
// against the introspected schema before any SQL is built (unknown ones are
// CodeUnknownModel / CodeUnknownColumn errors), every value is bound as a parameter, and
// statements are prepared once per column set and shared by later Writers (see
// cachedStmt). A Writer is not safe for
// concurrent use; end it with Commit or Rollback (Rollback after Commit is a no-op, so
// `defer w.Rollback()` is the usual pattern).
type Writer struct {
	db     *DB
	ctx    context.Context
	tx     *sql.Tx
	origin int64
	done   bool

	tables map[string]*table // pinned per Writer: statements are keyed by column positions
	stmts  map[string]prepared

	// scratch, reused row after row
	cols []*column
	args []any
	sig  []byte
	many manyScratch
}

type prepared struct {
	stmt      *sql.Stmt // nil: the dialect has no such statement for this table
	returning bool      // an upsert ending in RETURNING (xmax = 0)
}

// statement kinds, the first byte of a statement signature
const (
	opInsert byte = iota + 1
	opUpsert
	opInsertIgnore
	opUpdate
	opDelete
	opExists
	opUpsertMany
	opInsertIgnoreMany
	opKeysIn
)

// BeginWrite starts a write transaction (on SQLite it takes the write lock at once).
func (db *DB) BeginWrite(ctx context.Context) (*Writer, error) {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin write: %w", err)
	}
	w := &Writer{db: db, ctx: ctx, tx: tx, tables: map[string]*table{}, stmts: map[string]prepared{}}
	if db.d.flavor() == flavorMySQL {
		// The origin lives in a session variable: never inherit one from a pooled connection.
		if err := db.d.setOrigin(ctx, tx, 0); err != nil {
			tx.Rollback()
			return nil, fmt.Errorf("begin write: %w", err)
		}
	}
	return w, nil
}

// Tx returns the transaction, for statements the Writer does not cover.
func (w *Writer) Tx() *sql.Tx { return w.tx }

// SetOrigin marks the writes that follow as changes that came from platformID (0: local),
// so that the capture triggers record it. Setting the same origin again costs nothing.
func (w *Writer) SetOrigin(ctx context.Context, platformID int64) error {
	if platformID == w.origin {
		return nil
	}
	if err := w.db.d.setOrigin(ctx, w.tx, platformID); err != nil {
		return fmt.Errorf("set origin: %w", err)
	}
	w.origin = platformID
	return nil
}

// Commit clears the origin marker and commits.
func (w *Writer) Commit() error {
	if w.done {
		return errors.New("commit: transaction already ended")
	}
	if w.origin != 0 && w.db.d.flavor() != flavorPostgres {
		if err := w.SetOrigin(w.ctx, 0); err != nil {
			w.Rollback()
			return err
		}
	}
	w.done = true
	if err := w.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Rollback abandons the transaction. It is a no-op once the Writer has ended.
func (w *Writer) Rollback() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.origin != 0 && w.db.d.flavor() == flavorMySQL {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), 5*time.Second)
		_ = w.db.d.setOrigin(ctx, w.tx, 0) // best effort: the next Writer resets it anyway
		cancel()
	}
	if err := w.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// MarkApplied records (syncID, batchID) in mooxsync_applied (see EnsureApplied). It
// reports false when the pair was recorded before: the batch was applied already.
func (w *Writer) MarkApplied(ctx context.Context, syncID int64, batchID string) (bool, error) {
	k := kindDatetime
	if w.db.d.flavor() == flavorPostgres {
		k = kindDatetimeTZ
	}
	now := formatForDB(w.db.d.flavor(), k, time.Now().UTC().Truncate(time.Millisecond))
	res, err := w.tx.ExecContext(ctx, w.db.d.markAppliedSQL(), syncID, batchID, now)
	if err != nil {
		return false, fmt.Errorf("mark batch applied: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mark batch applied: %w", err)
	}
	return n == 1, nil
}

// InsertIfAbsent inserts row unless a row with the same key value exists; it reports
// whether it inserted.
func (w *Writer) InsertIfAbsent(ctx context.Context, tableName, key string, row map[string]any) (bool, error) {
	t, kc, cols, err := w.resolve(ctx, tableName, key, row, true)
	if err != nil {
		return false, err
	}
	p, err := w.prepare(ctx, opInsertIgnore, t, kc, cols, 1, func() (string, bool) { return ignoreSQL(w.db.d, t, kc, cols, 1), false })
	if err != nil {
		return false, err
	}
	if err := w.bindValues(cols, valuesOf(cols, row)); err != nil {
		return false, err
	}
	if p.stmt != nil {
		n, err := execN(ctx, p.stmt, w.args)
		return n == 1, w.wrap("insert into", t, err)
	}
	if ok, err := w.existsArg(ctx, t, kc, w.args[slices.Index(cols, kc)]); err != nil || ok {
		return false, err
	}
	return true, w.insert(ctx, t, cols)
}

// Insert inserts row.
func (w *Writer) Insert(ctx context.Context, tableName string, row map[string]any) error {
	t, _, cols, err := w.resolve(ctx, tableName, "", row, false)
	if err != nil {
		return err
	}
	if err := w.bindValues(cols, valuesOf(cols, row)); err != nil {
		return err
	}
	return w.insert(ctx, t, cols)
}

// Update sets the columns of row on every row whose key column equals keyValue and
// returns how many rows matched (MySQL: how many changed).
func (w *Writer) Update(ctx context.Context, tableName, key string, keyValue any, row map[string]any) (int64, error) {
	t, kc, cols, err := w.resolve(ctx, tableName, key, row, false)
	if err != nil {
		return 0, err
	}
	if err := w.bindValues(cols, valuesOf(cols, row)); err != nil {
		return 0, err
	}
	karg, err := bind(w.db.d.flavor(), kc, keyValue)
	if err != nil {
		return 0, err
	}
	return w.update(ctx, t, kc, cols, karg)
}

// Delete deletes the rows whose key column equals keyValue and returns how many it deleted.
func (w *Writer) Delete(ctx context.Context, tableName, key string, keyValue any) (int64, error) {
	t, kc, karg, err := w.resolveKey(ctx, tableName, key, keyValue)
	if err != nil {
		return 0, err
	}
	p, err := w.prepare(ctx, opDelete, t, kc, nil, 1, func() (string, bool) { return deleteSQL(w.db.d, t, kc), false })
	if err != nil {
		return 0, err
	}
	n, err := execN(ctx, p.stmt, []any{karg})
	return n, w.wrap("delete from", t, err)
}

// Exists reports whether a row's key column equals keyValue.
func (w *Writer) Exists(ctx context.Context, tableName, key string, keyValue any) (bool, error) {
	t, kc, karg, err := w.resolveKey(ctx, tableName, key, keyValue)
	if err != nil {
		return false, err
	}
	return w.existsArg(ctx, t, kc, karg)
}

func (w *Writer) existsArg(ctx context.Context, t *table, kc *column, karg any) (bool, error) {
	p, err := w.prepare(ctx, opExists, t, kc, nil, 1, func() (string, bool) { return existsSQL(w.db.d, t, kc), false })
	if err != nil {
		return false, err
	}
	var one int
	err = p.stmt.QueryRowContext(ctx, karg).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, w.wrap("look up in", t, err)
}

// insert runs INSERT with w.args bound for cols.
func (w *Writer) insert(ctx context.Context, t *table, cols []*column) error {
	p, err := w.prepare(ctx, opInsert, t, nil, cols, 1, func() (string, bool) { return insertSQL(w.db.d, t, cols), false })
	if err != nil {
		return err
	}
	_, err = p.stmt.ExecContext(ctx, w.args...)
	return w.wrap("insert into", t, err)
}

// update runs UPDATE with w.args bound for cols, matching karg.
func (w *Writer) update(ctx context.Context, t *table, kc *column, cols []*column, karg any) (int64, error) {
	p, err := w.prepare(ctx, opUpdate, t, kc, cols, 1, func() (string, bool) { return updateSQL(w.db.d, t, kc, cols), false })
	if err != nil {
		return 0, err
	}
	w.args = append(w.args, karg)
	n, err := execN(ctx, p.stmt, w.args)
	w.args = w.args[:len(w.args)-1]
	return n, w.wrap("update", t, err)
}

// table returns the table pinned for this Writer, introspecting it on first use.
func (w *Writer) table(ctx context.Context, name string) (*table, error) {
	if t := w.tables[name]; t != nil {
		return t, nil
	}
	t, err := w.db.table(ctx, w.tx, name)
	if err != nil {
		return nil, err
	}
	w.tables[name] = t
	return t, nil
}

// column finds a column of the pinned table, re-introspecting it once when the name is
// unknown (a migration may have added it). A fresh schema drops the cached statements.
func (w *Writer) column(ctx context.Context, t *table, name string) (*table, *column, error) {
	if c := t.byName[name]; c != nil {
		return t, c, nil
	}
	fresh, c, err := w.db.columnOf(ctx, w.tx, t, name)
	if err != nil {
		return nil, nil, err
	}
	w.tables[fresh.name] = fresh
	w.closeStmts()
	return fresh, c, nil
}

func (w *Writer) closeStmts() {
	for k, p := range w.stmts {
		if p.stmt != nil {
			p.stmt.Close()
		}
		delete(w.stmts, k)
	}
}

// resolve checks the table, the key and the row's columns, and returns the columns in table
// order in w.cols.
func (w *Writer) resolve(ctx context.Context, tableName, key string, row map[string]any, keyInRow bool) (*table, *column, []*column, error) {
	t, err := w.table(ctx, tableName)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(row) == 0 {
		return nil, nil, nil, protocol.Errorf(protocol.CodeBadRequest, "no columns to write into %q", tableName)
	}
	cols := w.cols[:0]
	for name := range row {
		var c *column
		if t, c, err = w.column(ctx, t, name); err != nil {
			return nil, nil, nil, err
		}
		cols = append(cols, c)
	}
	// The columns were resolved against possibly different snapshots if the table was
	// re-introspected half way: resolve again against the final one.
	for i, c := range cols {
		if t.byName[c.Name] != c {
			cols[i] = t.byName[c.Name]
		}
	}
	slices.SortFunc(cols, func(a, b *column) int { return a.idx - b.idx })
	w.cols = cols
	var kc *column
	if key != "" {
		if t, kc, err = w.column(ctx, t, key); err != nil {
			return nil, nil, nil, err
		}
		if keyInRow && !slices.Contains(cols, kc) {
			return nil, nil, nil, protocol.Errorf(protocol.CodeBadRequest, "row for %q has no value for its key %q", tableName, key)
		}
	}
	return t, kc, cols, nil
}

func (w *Writer) resolveKey(ctx context.Context, tableName, key string, keyValue any) (*table, *column, any, error) {
	t, err := w.table(ctx, tableName)
	if err != nil {
		return nil, nil, nil, err
	}
	t, kc, err := w.column(ctx, t, key)
	if err != nil {
		return nil, nil, nil, err
	}
	karg, err := bind(w.db.d.flavor(), kc, keyValue)
	return t, kc, karg, err
}

// bindValues converts vals, one per column of cols, into w.args.
func (w *Writer) bindValues(cols []*column, vals []any) error {
	w.args = w.args[:0]
	f := w.db.d.flavor()
	for i, c := range cols {
		v, err := bind(f, c, vals[i])
		if err != nil {
			return err
		}
		w.args = append(w.args, v)
	}
	return nil
}

// prepare returns the statement for (op, table, key, columns, rows), preparing it on first
// use. build returns the SQL and whether it is a RETURNING upsert; an empty SQL is cached
// as "no such statement".
func (w *Writer) prepare(ctx context.Context, op byte, t *table, kc *column, cols []*column, rows int, build func() (string, bool)) (prepared, error) {
	sig := append(w.sig[:0], op, byte(rows>>8), byte(rows))
	sig = append(sig, t.name...)
	sig = append(sig, 0)
	if kc != nil {
		sig = append(sig, byte(kc.idx>>8), byte(kc.idx))
	}
	for _, c := range cols {
		sig = append(sig, byte(c.idx>>8), byte(c.idx))
	}
	w.sig = sig
	if p, ok := w.stmts[string(sig)]; ok {
		return p, nil
	}
	q, returning := build()
	var p prepared
	if q != "" {
		var stmt *sql.Stmt
		// A statement the pool cannot prepare (a table created in this very transaction,
		// say) is prepared on the transaction alone.
		if shared, err := w.db.cachedStmt(ctx, q); err == nil && shared != nil {
			stmt = w.tx.StmtContext(ctx, shared)
		} else if stmt, err = w.tx.PrepareContext(ctx, q); err != nil {
			return prepared{}, w.wrap("prepare for", t, err)
		}
		p = prepared{stmt: stmt, returning: returning}
	}
	w.stmts[string(sig)] = p
	return p, nil
}

func (w *Writer) wrap(what string, t *table, err error) error {
	if err == nil {
		return nil
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%s %q: %w", what, t.name, err)
}

func execN(ctx context.Context, stmt *sql.Stmt, args []any) (int64, error) {
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
