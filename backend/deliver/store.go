package deliver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

var storeDDL = []string{
	// cursor is the highest capture queue id the target has acknowledged (or that held
	// nothing to send); sent counts the changes acknowledged.
	`CREATE TABLE IF NOT EXISTS deliver_cursor (
		sync_id INTEGER PRIMARY KEY,
		cursor INTEGER NOT NULL,
		sent INTEGER NOT NULL DEFAULT 0,
		last_sync INTEGER,
		updated_at INTEGER NOT NULL
	)`,
	// The batch being delivered: the queue rows first_id..last_id of the sync's model, under
	// batch_id. After a restart the same range is rebuilt and sent again under the same id.
	`CREATE TABLE IF NOT EXISTS deliver_inflight (
		sync_id INTEGER PRIMARY KEY,
		batch_id TEXT NOT NULL,
		first_id INTEGER NOT NULL,
		last_id INTEGER NOT NULL,
		count INTEGER NOT NULL,
		created_at INTEGER NOT NULL
	)`,
}

// store is the deliver tables in the agent's state database.
type store struct{ db *sql.DB }

func openStore(ctx context.Context, db *sql.DB) (*store, error) {
	for _, s := range storeDDL {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("create deliver tables: %w", err)
		}
	}
	return &store{db: db}, nil
}

// cursorRow is a sync's row of deliver_cursor.
type cursorRow struct {
	Cursor   int64
	Sent     int64
	LastSync time.Time
}

// inflight is a sync's row of deliver_inflight.
type inflight struct {
	BatchID     string
	First, Last int64
	Count       int
}

// ensureCursor creates the cursor of a sync at `at` unless it has one.
func (s *store) ensureCursor(ctx context.Context, syncID, at int64, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO deliver_cursor (sync_id, cursor, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (sync_id) DO NOTHING`, syncID, at, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("create cursor of sync %d: %w", syncID, err)
	}
	return nil
}

// skipPurged moves the cursor of a sync that is below purged (rows it had not sent were
// purged while it was disabled) to `to`, dropping its in-flight batch. It reports whether
// it did.
func (s *store) skipPurged(ctx context.Context, syncID, purged, to int64, now time.Time) (bool, error) {
	var cursor int64
	if err := s.db.QueryRowContext(ctx, `SELECT cursor FROM deliver_cursor WHERE sync_id = ?`, syncID).Scan(&cursor); err != nil {
		return false, fmt.Errorf("read cursor of sync %d: %w", syncID, err)
	}
	if cursor >= purged {
		return false, nil
	}
	return true, s.advance(ctx, syncID, to, 0, nil, now)
}

// cursors returns the cursor rows of every sync.
func (s *store) cursors(ctx context.Context) (map[int64]cursorRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sync_id, cursor, sent, COALESCE(last_sync, 0) FROM deliver_cursor`)
	if err != nil {
		return nil, fmt.Errorf("read cursors: %w", err)
	}
	defer rows.Close()
	out := map[int64]cursorRow{}
	for rows.Next() {
		var id, last int64
		var c cursorRow
		if err := rows.Scan(&id, &c.Cursor, &c.Sent, &last); err != nil {
			return nil, fmt.Errorf("read cursors: %w", err)
		}
		if last != 0 {
			c.LastSync = time.UnixMilli(last).UTC()
		}
		out[id] = c
	}
	return out, rows.Err()
}

// load returns a sync's cursor row and its in-flight batch (nil when none).
func (s *store) load(ctx context.Context, syncID int64) (cursorRow, *inflight, error) {
	var c cursorRow
	var last int64
	err := s.db.QueryRowContext(ctx, `SELECT cursor, sent, COALESCE(last_sync, 0) FROM deliver_cursor WHERE sync_id = ?`,
		syncID).Scan(&c.Cursor, &c.Sent, &last)
	if err != nil {
		return c, nil, fmt.Errorf("read cursor of sync %d: %w", syncID, err)
	}
	if last != 0 {
		c.LastSync = time.UnixMilli(last).UTC()
	}
	var f inflight
	err = s.db.QueryRowContext(ctx, `SELECT batch_id, first_id, last_id, count FROM deliver_inflight WHERE sync_id = ?`,
		syncID).Scan(&f.BatchID, &f.First, &f.Last, &f.Count)
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil, nil
	}
	if err != nil {
		return c, nil, fmt.Errorf("read in-flight batch of sync %d: %w", syncID, err)
	}
	return c, &f, nil
}

// addSent counts n repair rows the target acknowledged as sent by the sync, so that a
// sync's sent counter covers everything its target applied from it.
func (s *store) addSent(ctx context.Context, syncID int64, n int, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE deliver_cursor SET sent = sent + ?, last_sync = ? WHERE sync_id = ?`,
		n, now.UnixMilli(), syncID)
	if err != nil {
		return fmt.Errorf("count repairs of sync %d: %w", syncID, err)
	}
	return nil
}

// advance records, in one transaction, that the target acknowledged `sent` changes up to
// queue id cursor (sent 0: nothing was sent, the cursor only moves past rows of no
// concern), and makes next the in-flight batch (nil: none).
func (s *store) advance(ctx context.Context, syncID, cursor int64, sent int, next *inflight, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("advance cursor of sync %d: %w", syncID, err)
	}
	defer tx.Rollback()
	q := `UPDATE deliver_cursor SET cursor = ?, updated_at = ? WHERE sync_id = ?`
	args := []any{cursor, now.UnixMilli(), syncID}
	if sent > 0 {
		q = `UPDATE deliver_cursor SET cursor = ?, updated_at = ?, sent = sent + ?, last_sync = ? WHERE sync_id = ?`
		args = []any{cursor, now.UnixMilli(), sent, now.UnixMilli(), syncID}
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("advance cursor of sync %d: %w", syncID, err)
	}
	if err := putInflight(ctx, tx, syncID, next, now); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("advance cursor of sync %d: %w", syncID, err)
	}
	return nil
}

// setInflight makes f the in-flight batch of a sync (nil: none).
func (s *store) setInflight(ctx context.Context, syncID int64, f *inflight, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record in-flight batch of sync %d: %w", syncID, err)
	}
	defer tx.Rollback()
	if err := putInflight(ctx, tx, syncID, f, now); err != nil {
		return err
	}
	return tx.Commit()
}

func putInflight(ctx context.Context, tx *sql.Tx, syncID int64, f *inflight, now time.Time) error {
	var err error
	if f == nil {
		_, err = tx.ExecContext(ctx, `DELETE FROM deliver_inflight WHERE sync_id = ?`, syncID)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO deliver_inflight (sync_id, batch_id, first_id, last_id, count, created_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sync_id) DO UPDATE SET batch_id = excluded.batch_id,
			first_id = excluded.first_id, last_id = excluded.last_id, count = excluded.count,
			created_at = excluded.created_at`, syncID, f.BatchID, f.First, f.Last, f.Count, now.UnixMilli())
	}
	if err != nil {
		return fmt.Errorf("record in-flight batch of sync %d: %w", syncID, err)
	}
	return nil
}

// forgetExcept deletes the cursors and in-flight batches of every sync not in keep.
func (s *store) forgetExcept(ctx context.Context, keep []int64) (int64, error) {
	where, args := notIn(keep)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("forget removed syncs: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM deliver_cursor`+where, args...)
	if err != nil {
		return 0, fmt.Errorf("forget removed syncs: %w", err)
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `DELETE FROM deliver_inflight`+where, args...); err != nil {
		return 0, fmt.Errorf("forget removed syncs: %w", err)
	}
	return n, tx.Commit()
}

// minCursor returns the lowest cursor of the given syncs; ok is false when none has one.
func (s *store) minCursor(ctx context.Context, ids []int64) (int64, bool, error) {
	if len(ids) == 0 {
		return 0, false, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	var m sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MIN(cursor) FROM deliver_cursor WHERE sync_id IN (?`+
		strings.Repeat(", ?", len(ids)-1)+`)`, args...).Scan(&m)
	if err != nil {
		return 0, false, fmt.Errorf("read lowest cursor: %w", err)
	}
	return m.Int64, m.Valid, nil
}

// notIn renders " WHERE sync_id NOT IN (...)" for ids, or "" when ids is empty.
func notIn(ids []int64) (string, []any) {
	if len(ids) == 0 {
		return "", nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return ` WHERE sync_id NOT IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`, args
}
