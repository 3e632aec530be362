// Package state is the agent's own durable state: enrollment, the desired state in force,
// seen message ids, the inbox of received batches with its apply cursor, dead letters, run
// history and per-sync counters. It lives in a SQLite file in the agent's state directory,
// readable by its owner only, and never in the application database.
package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "github.com/mattn/go-sqlite3" // SQLite driver for the state file.
)

// FileName is the name of the state database inside the state directory.
const FileName = "agent.db"

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// Store is the agent's state database.
type Store struct {
	db   *sql.DB
	path string
}

// Open opens (creating if needed) the state database in dir. The directory is created with
// mode 0700 and the database file with mode 0600; an existing file is narrowed to 0600.
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create state file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("create state file: %w", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("restrict state file: %w", err)
		}
	}
	db, err := sql.Open("sqlite3", dsnOf(path))
	if err != nil {
		return nil, fmt.Errorf("open state database: %w", err)
	}
	// One connection: every statement is short, and a single writer never sees SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	s := &Store{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// dsnOf is the DSN of the state file at path: WAL, full sync, a busy timeout, and
// transactions that take the write lock when they begin.
func dsnOf(path string) string {
	return "file:" + path + "?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=10000&_txlock=immediate&_foreign_keys=on"
}

// SharedPoolSize is the number of connections of a pool opened by OpenShared.
const SharedPoolSize = 6

// OpenShared opens another connection pool on the store's file, with the same settings and
// up to SharedPoolSize connections, for the components that keep their own tables in the
// state file and read while they write (the capture queue and the delivery cursors). WAL
// lets its readers run beside every writer; writers of both pools wait for each other up
// to the busy timeout. The caller closes it.
func (s *Store) OpenShared(ctx context.Context) (*sql.DB, error) {
	db, err := sql.Open("sqlite3", dsnOf(s.path))
	if err != nil {
		return nil, fmt.Errorf("open state database: %w", err)
	}
	db.SetMaxOpenConns(SharedPoolSize)
	db.SetMaxIdleConns(SharedPoolSize)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open state database: %w", err)
	}
	return db, nil
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

var migrations = []string{
	`CREATE TABLE enrollment (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		platform_id INTEGER NOT NULL,
		platform TEXT NOT NULL,
		platform_token TEXT NOT NULL,
		enrolled_at INTEGER NOT NULL
	);
	CREATE TABLE desired_state (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		revision INTEGER NOT NULL,
		state TEXT NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE TABLE seen_ids (
		id TEXT PRIMARY KEY,
		seen_at INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX seen_ids_seen_at ON seen_ids (seen_at);
	CREATE TABLE inbox (
		pos INTEGER PRIMARY KEY AUTOINCREMENT,
		batch_id TEXT NOT NULL UNIQUE,
		sync_id INTEGER NOT NULL,
		source_platform_id INTEGER NOT NULL,
		first_seq INTEGER NOT NULL,
		last_seq INTEGER NOT NULL,
		count INTEGER NOT NULL,
		body BLOB,
		status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'dead')),
		received_at INTEGER NOT NULL,
		oldest_change_at INTEGER NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		last_error TEXT,
		done_at INTEGER
	);
	CREATE INDEX inbox_pending ON inbox (sync_id, status, first_seq, pos);
	CREATE TABLE apply_cursor (
		sync_id INTEGER PRIMARY KEY,
		batch_id TEXT NOT NULL,
		last_seq INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE TABLE dead_letters (
		batch_id TEXT PRIMARY KEY,
		sync_id INTEGER NOT NULL,
		source_platform_id INTEGER NOT NULL,
		count INTEGER NOT NULL,
		body BLOB NOT NULL,
		reason TEXT NOT NULL,
		attempts INTEGER NOT NULL,
		failed_at INTEGER NOT NULL
	);
	CREATE INDEX dead_letters_sync ON dead_letters (sync_id, failed_at);
	CREATE TABLE runs (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		sync_id INTEGER NOT NULL,
		batch_id TEXT NOT NULL,
		outcome TEXT NOT NULL,
		changes INTEGER NOT NULL,
		error TEXT,
		started_at INTEGER NOT NULL,
		finished_at INTEGER NOT NULL
	);
	CREATE INDEX runs_sync ON runs (sync_id, id);
	CREATE TABLE sync_counters (
		sync_id INTEGER PRIMARY KEY,
		applied INTEGER NOT NULL DEFAULT 0,
		failed INTEGER NOT NULL DEFAULT 0,
		last_sync INTEGER,
		error_message TEXT
	);`,
	// 2: token rotation (the previous token and when the rotation was received and
	// confirmed), dead letters moved back to the inbox, and pruning of applied batches.
	`ALTER TABLE enrollment ADD COLUMN previous_token TEXT;
	ALTER TABLE enrollment ADD COLUMN rotated_at INTEGER;
	ALTER TABLE enrollment ADD COLUMN confirmed_at INTEGER;
	ALTER TABLE inbox ADD COLUMN requeued INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX inbox_done ON inbox (status, done_at);`,
	// 3: reconciliation runs of the syncs from this platform (their JSON report).
	`CREATE TABLE reconcile_runs (
		run_id TEXT PRIMARY KEY,
		sync_id INTEGER NOT NULL,
		started_at INTEGER NOT NULL,
		body TEXT NOT NULL
	);
	CREATE INDEX reconcile_runs_sync ON reconcile_runs (sync_id, started_at);`,
}

func (s *Store) migrate(ctx context.Context) error {
	var version int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read state schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("state schema version %d is newer than this agent (%d)", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate state schema to version %d: %w", i+1, err)
		}
	}
	return nil
}

// tx runs fn in a transaction, committing when it returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }
