// Package capturetest opens agent state databases for the tests of capture and deliver.
package capturetest

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3"
)

// MustOpenState opens a new SQLite state database in tb's temporary directory with the
// settings of the agent's state store, a single connection included, and closes it on
// cleanup.
func MustOpenState(tb testing.TB) *sql.DB {
	tb.Helper()
	return MustOpenStateAt(tb, filepath.Join(tb.TempDir(), "agent.db"))
}

// MustOpenStateAt opens the state database at path like MustOpenState, for tests that
// reopen the same file (a restart).
func MustOpenStateAt(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+
		"?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=10000&_txlock=immediate&_foreign_keys=on")
	if err != nil {
		tb.Fatalf("open state database: %v", err)
	}
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		tb.Fatalf("open state database: %v", err)
	}
	return db
}
