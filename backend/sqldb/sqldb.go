// Package sqldb is mooxsync's access to an application database: SQLite (mattn/go-sqlite3),
// PostgreSQL (pgx through database/sql) and MySQL/MariaDB (go-sql-driver/mysql).
//
// It introspects the application's tables, writes rows by a key column with every name
// checked against the live schema and every value bound as a parameter, and owns the
// capture primitives in the application database: the outbox table mooxsync_changes, the
// triggers that fill it, and the origin marker that tags the agent's own writes.
//
// Values leave this package in one canonical form whatever the database: numbers as
// json.Number, datetimes as RFC 3339 strings in UTC, booleans as bool, JSON documents
// decoded, bytes as base64 strings.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// DB is an open application database.
type DB struct {
	sql    *sql.DB
	d      dialect
	schema string // PostgreSQL schema or MySQL database in use; "main" for SQLite

	mu     sync.RWMutex
	tables map[string]*table

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt // prepared statements by SQL text, shared by Writers
}

// maxCachedStmts bounds the DB's statement cache; statements beyond it are prepared for
// each Writer only.
const maxCachedStmts = 256

// cachedStmt returns a pool-level prepared statement for q, preparing it on first use, or
// nil when the cache is full. Transactions use it through Tx.StmtContext, which re-uses the
// statement on each connection it was prepared on.
func (db *DB) cachedStmt(ctx context.Context, q string) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	s, full := db.stmts[q], len(db.stmts) >= maxCachedStmts
	db.stmtMu.Unlock()
	if s != nil || full {
		return s, nil
	}
	s, err := db.sql.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if prev := db.stmts[q]; prev != nil {
		s.Close()
		return prev, nil
	}
	db.stmts[q] = s
	return s, nil
}

// Open connects to the database named by dsn:
//
//	sqlite:/path/app.db              (also sqlite:///path/app.db, sqlite:relative.db)
//	postgres://user@host:5432/db     (or postgresql://); the schema is the current schema
//	mysql://user:pass@tcp(host:3306)/db
//
// SQLite is opened in WAL mode with a busy timeout, foreign keys on and transactions that
// take the write lock when they begin (_txlock=immediate), so that a single writer never
// fails on a lock upgrade. MySQL sessions are pinned to UTC.
func Open(ctx context.Context, dsn string) (*DB, error) {
	scheme, rest, ok := strings.Cut(dsn, ":")
	if !ok {
		return nil, errors.New("open database: dsn has no scheme (want sqlite:, postgres:, postgresql: or mysql:)")
	}
	var (
		sdb *sql.DB
		d   dialect
		err error
	)
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		sdb, err = openSQLite(rest)
		d = sqliteDialect{}
	case "postgres", "postgresql":
		sdb, err = openPostgres(dsn)
		d = postgresDialect{}
	case "mysql":
		var md mysqlDialect
		sdb, md, err = openMySQL(ctx, strings.TrimPrefix(rest, "//"))
		d = md
	default:
		return nil, fmt.Errorf("open database: unknown scheme %q (want sqlite:, postgres:, postgresql: or mysql:)", scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", d.Name(), err)
	}
	db := &DB{sql: sdb, d: d, tables: map[string]*table{}, stmts: map[string]*sql.Stmt{}}
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open %s database: %w", d.Name(), err)
	}
	if db.schema, err = d.currentSchema(ctx, sdb); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open %s database: %w", d.Name(), err)
	}
	return db, nil
}

// Close closes the prepared statements and the connection pool.
func (db *DB) Close() error {
	db.stmtMu.Lock()
	for q, s := range db.stmts {
		s.Close()
		delete(db.stmts, q)
	}
	db.stmtMu.Unlock()
	return db.sql.Close()
}

// SQL returns the underlying pool, for queries this package does not cover.
func (db *DB) SQL() *sql.DB { return db.sql }

// Dialect returns the database's dialect.
func (db *DB) Dialect() Dialect { return db.d }

// Schema returns the PostgreSQL schema or MySQL database the connection works in ("main"
// for SQLite).
func (db *DB) Schema() string { return db.schema }

// Models introspects every application table (mooxsync_* tables excluded), sorted by name,
// and refreshes the cache Model reads from.
func (db *DB) Models(ctx context.Context) ([]protocol.Model, error) {
	tables, err := db.d.loadTables(ctx, db.sql, "")
	if err != nil {
		return nil, fmt.Errorf("introspect tables: %w", err)
	}
	byName := make(map[string]*table, len(tables))
	out := make([]protocol.Model, 0, len(tables))
	for _, t := range tables {
		byName[t.name] = t
		out = append(out, t.model())
	}
	slices.SortFunc(out, func(a, b protocol.Model) int { return strings.Compare(a.Name, b.Name) })
	db.mu.Lock()
	db.tables = byName
	db.mu.Unlock()
	return out, nil
}

// Model returns one table, from the cache when it is there, else introspected afresh. A
// table that does not exist (or is one of mooxsync's own) is a *protocol.Error with
// CodeUnknownModel.
func (db *DB) Model(ctx context.Context, name string) (*protocol.Model, error) {
	t, err := db.table(ctx, db.sql, name)
	if err != nil {
		return nil, err
	}
	m := t.model()
	return &m, nil
}

// Refresh drops the cached schema of one table (or of all tables when name is ""), so the
// next use introspects it again. Call it after a migration.
func (db *DB) Refresh(name string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if name == "" {
		db.tables = map[string]*table{}
		return
	}
	delete(db.tables, name)
}

// table returns the cached table, loading it through q on a miss.
func (db *DB) table(ctx context.Context, q querier, name string) (*table, error) {
	db.mu.RLock()
	t := db.tables[name]
	db.mu.RUnlock()
	if t != nil {
		return t, nil
	}
	return db.reload(ctx, q, name)
}

// reload introspects one table afresh and caches it.
func (db *DB) reload(ctx context.Context, q querier, name string) (*table, error) {
	if name == "" || isInternal(name) {
		return nil, unknownModel(name)
	}
	tables, err := db.d.loadTables(ctx, q, name)
	if err != nil {
		return nil, fmt.Errorf("introspect %q: %w", name, err)
	}
	for _, t := range tables {
		if t.name == name {
			db.mu.Lock()
			db.tables[name] = t
			db.mu.Unlock()
			return t, nil
		}
	}
	db.Refresh(name)
	return nil, unknownModel(name)
}

// columnOf returns a column of t, introspecting the table once more before it gives up (a
// column may have been added since the cache was filled). It returns the table it found
// the column in.
func (db *DB) columnOf(ctx context.Context, q querier, t *table, name string) (*table, *column, error) {
	if c := t.byName[name]; c != nil {
		return t, c, nil
	}
	fresh, err := db.reload(ctx, q, t.name)
	if err != nil {
		return nil, nil, err
	}
	c, err := fresh.column(name)
	return fresh, c, err
}

// Get reads the row whose key column equals value, with values in canonical form (see the
// package comment). found is false when no row matches.
func (db *DB) Get(ctx context.Context, tableName, key string, value any) (row map[string]any, found bool, err error) {
	t, err := db.table(ctx, db.sql, tableName)
	if err != nil {
		return nil, false, err
	}
	t, kc, err := db.columnOf(ctx, db.sql, t, key)
	if err != nil {
		return nil, false, err
	}
	arg, err := bind(db.d.flavor(), kc, value)
	if err != nil {
		return nil, false, err
	}
	rows, err := db.sql.QueryContext(ctx, selectSQL(db.d, t, kc), arg)
	if err != nil {
		return nil, false, fmt.Errorf("get from %q: %w", t.name, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, false, rows.Err()
	}
	vals := make([]any, len(t.cols))
	ptrs := make([]any, len(t.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, false, fmt.Errorf("get from %q: %w", t.name, err)
	}
	row = make(map[string]any, len(t.cols))
	for i, c := range t.cols {
		row[c.Name] = normalize(c, vals[i], fromScan)
	}
	return row, true, rows.Err()
}
