// Package catalog is the control center's catalog: the platforms and syncs an admin
// manages (with the Moox Sync columns), what the control center learns about each agent
// (TLS fingerprint, enrollment, acknowledged revision, status snapshots) and the history of
// desired-state pushes. It lives in one SQLite file whose schema is migrated from embedded
// SQL files when the catalog is opened.
//
// The catalog never holds tokens: the sync token and the platform tokens live in the OS
// keyring (package secrets).
//
// Every change to platforms or syncs, and to a pinned TLS fingerprint (agents receive their
// peers' fingerprints), bumps the fleet's desired-state revision in the same transaction,
// so a state built from a Snapshot always carries the revision of exactly what it contains.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Sentinel errors of the catalog. Compare with errors.Is.
var (
	// ErrNotFound means the platform, sync or value asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the change collides with the catalog's current content: a duplicate
	// name, domain or sync route, or a fingerprint other than the one awaiting acceptance.
	ErrConflict = errors.New("conflict")
	// ErrInUse means a platform cannot be deleted because syncs use it (see *InUseError).
	ErrInUse = errors.New("in use")
	// ErrInvalid means a field failed validation (see *ValidationError).
	ErrInvalid = errors.New("invalid")
	// ErrFingerprintChanged means an agent presented a TLS certificate other than the
	// pinned one; it is kept as the platform's pending fingerprint until an admin accepts it.
	ErrFingerprintChanged = errors.New("agent TLS fingerprint changed")
)

// ValidationError reports one field that failed validation, named by its JSON name, with a
// message an admin can act on. It matches ErrInvalid with errors.Is, or ErrConflict when the
// value collides with another record (a duplicate name or domain).
type ValidationError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	// conflict marks a value that is well formed but taken by another record.
	conflict bool
}

// Error returns "field: message".
func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// Unwrap returns ErrConflict for a duplicate and ErrInvalid otherwise.
func (e *ValidationError) Unwrap() error {
	if e.conflict {
		return ErrConflict
	}
	return ErrInvalid
}

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

func duplicate(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...), conflict: true}
}

// SyncRef names a sync in an error or a list.
type SyncRef struct {
	ID    int64  `json:"id"`
	Title string `json:"title"`
}

// InUseError is returned when deleting a platform that syncs still use; it names them.
// It matches ErrInUse with errors.Is.
type InUseError struct {
	PlatformID int64     `json:"platform_id"`
	Syncs      []SyncRef `json:"syncs"`
}

// Error names the syncs that use the platform.
func (e *InUseError) Error() string {
	msg := fmt.Sprintf("platform %d is used by %d sync(s):", e.PlatformID, len(e.Syncs))
	for i, s := range e.Syncs {
		if i > 0 {
			msg += ","
		}
		msg += fmt.Sprintf(" #%d %s", s.ID, s.Title)
	}
	return msg + "; delete or change them first"
}

// Unwrap returns ErrInUse.
func (e *InUseError) Unwrap() error { return ErrInUse }

// Store is the catalog, backed by one SQLite file. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	path string

	// Now returns the current time; tests may replace it before use. Times are stored
	// in UTC with millisecond precision.
	Now func() time.Time

	// StatusRetention is how many status snapshots are kept per platform (default 500).
	StatusRetention int
	// PushRetention is how many push results are kept per platform (default 1000).
	PushRetention int
}

// Default retention of history rows, per platform.
const (
	DefaultStatusRetention = 500
	DefaultPushRetention   = 1000
)

// DefaultPath returns where the control center keeps its catalog:
// os.UserConfigDir()/mooxsync/catalog.db.
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find config dir: %w", err)
	}
	return filepath.Join(dir, "mooxsync", "catalog.db"), nil
}

// Open opens the catalog at path, creating the file (mode 0600) and its directory (0700)
// when missing, and brings its schema up to date.
func Open(path string) (*Store, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open catalog: path %q: want a file name without '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	// _txlock=immediate takes the write lock at BEGIN, so a transaction that reads and then
	// writes never fails half way with SQLITE_BUSY; readers still run alongside thanks to WAL.
	dsn := path + "?_foreign_keys=on&_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	s := &Store{db: db, path: path, Now: time.Now}
	ctx := context.Background()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	return s, nil
}

// Path returns the file the catalog lives in.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close catalog: %w", err)
	}
	return nil
}

func (s *Store) now() time.Time {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return now().UTC().Truncate(time.Millisecond)
}

func (s *Store) statusRetention() int {
	if s.StatusRetention > 0 {
		return s.StatusRetention
	}
	return DefaultStatusRetention
}

func (s *Store) pushRetention() int {
	if s.PushRetention > 0 {
		return s.PushRetention
	}
	return DefaultPushRetention
}

// write runs fn in a write transaction, committing when it returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Revision returns the fleet's desired-state revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	rev, err := revision(ctx, s.db)
	if err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	return rev, nil
}

// BumpRevision raises the desired-state revision by one and returns the new value. Changes
// made through the Store bump it themselves; call this when the desired state changes in a
// way the catalog cannot see, such as a rotated token (the pair keys derive from it).
func (s *Store) BumpRevision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		rev, err = bumpRevision(ctx, tx)
		return err
	})
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// queryer is what reads need from *sql.DB and *sql.Tx alike.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queryAll runs a query and scans every row with scan. The result is never nil, so an
// empty list encodes as [] for the frontend.
func queryAll[T any](ctx context.Context, q queryer, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func revision(ctx context.Context, q queryer) (int64, error) {
	var rev int64
	if err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'revision'`).Scan(&rev); err != nil {
		return 0, err
	}
	return rev, nil
}

func bumpRevision(ctx context.Context, tx *sql.Tx) (int64, error) {
	var rev int64
	err := tx.QueryRowContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value`).Scan(&rev)
	if err != nil {
		return 0, fmt.Errorf("bump revision: %w", err)
	}
	return rev, nil
}

// Snapshot is a consistent view of the desired state: the revision and every platform and
// sync, read in one transaction, so the revision describes exactly these rows.
type Snapshot struct {
	Revision  int64      `json:"revision"`
	Platforms []Platform `json:"platforms"`
	Syncs     []Sync     `json:"syncs"`
}

// Snapshot reads the revision, the platforms and the syncs in one transaction. Build every
// agent's desired state from one Snapshot, never from separate reads.
func (s *Store) Snapshot(ctx context.Context) (Snapshot, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var snap Snapshot
	if snap.Revision, err = revision(ctx, tx); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: read revision: %w", err)
	}
	if snap.Platforms, err = listPlatforms(ctx, tx); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	if snap.Syncs, err = listSyncs(ctx, tx, SyncFilter{}); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	return snap, nil
}

// timeLayout is fixed width, so stored times sort as text.
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func formatTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := formatTime(*t)
	return &s
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse stored time %q: %w", s, err)
	}
	return t, nil
}

func parseTimePtr(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func nullString(s *string) sql.NullString {
	if s == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *s, Valid: true}
}

func stringPtr(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	v := s.String
	return &v
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY constraint failure.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) &&
		(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}

// isForeignKeyViolation reports whether err is a FOREIGN KEY constraint failure.
func isForeignKeyViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintForeignKey
}
