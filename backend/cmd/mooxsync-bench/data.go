package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3"
)

// sqliteParams are the connection settings the agent gives every SQLite connection
// (backend/sqldb/sqlite.go, sqliteDefaults): the raw baseline and the application's own
// writer use exactly these.
var sqliteParams = map[string]string{
	"_journal_mode": "WAL",
	"_busy_timeout": "10000",
	"_foreign_keys": "on",
	"_synchronous":  "NORMAL",
	"_txlock":       "immediate",
}

// openSQLite opens a read-write pool on path with the agent's settings.
func openSQLite(path string) (*sql.DB, error) {
	q := url.Values{}
	for k, v := range sqliteParams {
		q.Set(k, v)
	}
	db, err := sql.Open("sqlite3", path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, db.Ping()
}

// openReadOnly opens a read-only connection to a SQLite file in WAL mode: it reads
// committed snapshots while the agent writes.
func openReadOnly(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, db.Ping()
}

// postsDDL is a Laravel-like posts table (what `php artisan make:model Post -m` gives,
// with a ulid): the schema on both ends, and of the raw baseline.
func postsDDL(table string) string {
	return `CREATE TABLE "` + table + `" (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		ulid TEXT UNIQUE,
		slug TEXT,
		title TEXT,
		body TEXT,
		views INTEGER,
		published BOOLEAN,
		created_at DATETIME,
		updated_at DATETIME)`
}

// postColumns are the columns the application writes (all but the local id).
var postColumns = []string{"ulid", "slug", "title", "body", "views", "published", "created_at", "updated_at"}

// createPosts creates the posts table(s) in a fresh SQLite file.
func createPosts(path string, tables ...string) error {
	db, err := openSQLite(path)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, t := range tables {
		if _, err := db.Exec(postsDDL(t)); err != nil {
			return fmt.Errorf("create %s in %s: %w", t, path, err)
		}
	}
	return nil
}

// ulidOf is the ulid of row i of a stage (a letter, so that stages never collide):
// 26 characters, like a real ULID.
func ulidOf(stage byte, i int) string { return fmt.Sprintf("01J%c%022d", stage, i) }

// bodyText is ~200 bytes of post body.
const bodyText = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor " +
	"incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation " +
	"ullamco laboris nisi ut aliquip."

var baseTime = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// laravelTime is how Laravel writes a DATETIME column.
const laravelTime = "2006-01-02 15:04:05"

// post is one row in postColumns order.
type post struct {
	ulid, slug, title, body string
	views                   int64
	published               bool
	createdAt, updatedAt    string
}

func makePost(stage byte, i int) post {
	at := baseTime.Add(time.Duration(i) * time.Second)
	return post{
		ulid:      ulidOf(stage, i),
		slug:      fmt.Sprintf("post-%c-%d", stage|0x20, i),
		title:     fmt.Sprintf("Post %c%d: a benchmark title", stage, i),
		body:      fmt.Sprintf("%07d ", i) + bodyText,
		views:     int64(i*7919) % 100000,
		published: i%3 != 0,
		createdAt: at.Format(laravelTime),
		updatedAt: at.Add(time.Hour).Format(laravelTime),
	}
}

func (p post) args() []any {
	return []any{p.ulid, p.slug, p.title, p.body, p.views, p.published, p.createdAt, p.updatedAt}
}

// data is the row as the source's capture sends it (column -> JSON value).
func (p post) data(id int64) map[string]any {
	return map[string]any{"id": id, "ulid": p.ulid, "slug": p.slug, "title": p.title, "body": p.body,
		"views": p.views, "published": p.published, "created_at": p.createdAt, "updated_at": p.updatedAt}
}

// rowsPerStatement is the size of the multi-row statements of the writer and of the raw
// baseline: the largest size the agent's own upsert uses (backend/sqldb/upsert.go).
const rowsPerStatement = 100

// insertSQL is a multi-row INSERT of n posts, with an optional conflict clause.
func insertSQL(table string, n int, clause string) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO "` + table + `" (` + strings.Join(postColumns, ", ") + `) VALUES `)
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(postColumns)), ", ") + ")"
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	if clause != "" {
		b.WriteString(" " + clause)
	}
	return b.String()
}

// upsertClause updates every column but the key on a conflict of the ulid.
func upsertClause() string {
	var set []string
	for _, c := range postColumns[1:] {
		set = append(set, c+" = excluded."+c)
	}
	return "ON CONFLICT(ulid) DO UPDATE SET " + strings.Join(set, ", ")
}

// writer inserts rows of one stage into a table with prepared multi-row statements.
type writer struct {
	db     *sql.DB
	table  string
	clause string
	stmts  map[int]*sql.Stmt
	args   []any
}

func newWriter(db *sql.DB, table, clause string) *writer {
	return &writer{db: db, table: table, clause: clause, stmts: map[int]*sql.Stmt{}}
}

func (w *writer) close() {
	for _, s := range w.stmts {
		s.Close()
	}
}

// tx writes rows [from, to) of stage in one transaction, in statements of up to
// rowsPerStatement rows, and returns when the commit has returned.
func (w *writer) tx(ctx context.Context, stage byte, from, to int) error {
	// Prepared before the transaction takes the pool's one connection; tx.Stmt reuses them
	// on that connection.
	for start := from; start < to; start += rowsPerStatement {
		n := min(rowsPerStatement, to-start)
		if w.stmts[n] == nil {
			stmt, err := w.db.PrepareContext(ctx, insertSQL(w.table, n, w.clause))
			if err != nil {
				return err
			}
			w.stmts[n] = stmt
		}
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for start := from; start < to; start += rowsPerStatement {
		n := min(rowsPerStatement, to-start)
		stmt := w.stmts[n]
		w.args = w.args[:0]
		for i := start; i < start+n; i++ {
			w.args = append(w.args, makePost(stage, i).args()...)
		}
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, w.args...); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("insert into %s: %w", w.table, err)
		}
	}
	return tx.Commit()
}
