package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SyncReport is what the state knows about one sync on the receiving side.
type SyncReport struct {
	SyncID int64
	// Pending counts the changes stored but not yet applied; OldestPending is the time of the
	// oldest of them (zero when nothing is pending).
	Pending       int64
	OldestPending time.Time
	// Applied and Failed count changes applied and changes given up on (dead letters).
	Applied  int64
	Failed   int64
	LastSync time.Time
	// DeadLetters counts the batches given up on; LastError is the latest reason, either of
	// a dead letter or of a failed attempt of the batch being retried.
	DeadLetters int64
	Retrying    bool
	// Requeued is true while dead letters moved back to the inbox wait to be applied.
	Requeued  bool
	LastError string
}

// Reports returns a SyncReport for every sync the state holds anything about.
func (s *Store) Reports(ctx context.Context) (map[int64]*SyncReport, error) {
	out := make(map[int64]*SyncReport)
	get := func(id int64) *SyncReport {
		r, ok := out[id]
		if !ok {
			r = &SyncReport{SyncID: id}
			out[id] = r
		}
		return r
	}
	rows, err := s.db.QueryContext(ctx, `SELECT sync_id, SUM(count), MIN(oldest_change_at), MAX(attempts),
			MAX(requeued)
		FROM inbox WHERE status = 'pending' GROUP BY sync_id`)
	if err != nil {
		return nil, fmt.Errorf("read pending batches: %w", err)
	}
	for rows.Next() {
		var id, n, oldest, attempts, requeued int64
		if err := rows.Scan(&id, &n, &oldest, &attempts, &requeued); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("read pending batches: %w", err)
		}
		r := get(id)
		r.Pending, r.OldestPending, r.Retrying, r.Requeued = n, fromMS(oldest), attempts > 0, requeued > 0
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("read pending batches: %w", err)
	}

	rows, err = s.db.QueryContext(ctx, `SELECT c.sync_id, c.applied, c.failed, COALESCE(c.last_sync, 0),
			COALESCE(c.error_message, ''), (SELECT COUNT(*) FROM dead_letters d WHERE d.sync_id = c.sync_id)
		FROM sync_counters c`)
	if err != nil {
		return nil, fmt.Errorf("read sync counters: %w", err)
	}
	for rows.Next() {
		var id, applied, failed, last, dead int64
		var msg string
		if err := rows.Scan(&id, &applied, &failed, &last, &msg, &dead); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("read sync counters: %w", err)
		}
		r := get(id)
		r.Applied, r.Failed, r.DeadLetters, r.LastError = applied, failed, dead, msg
		if last != 0 {
			r.LastSync = fromMS(last)
		}
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("read sync counters: %w", err)
	}

	// A batch being retried, or requeued from the dead letters, reports its latest failure.
	rows, err = s.db.QueryContext(ctx, `SELECT sync_id, last_error FROM inbox
		WHERE status = 'pending' AND (attempts > 0 OR requeued = 1) AND last_error IS NOT NULL ORDER BY pos`)
	if err != nil {
		return nil, fmt.Errorf("read retried batches: %w", err)
	}
	for rows.Next() {
		var id int64
		var msg string
		if err := rows.Scan(&id, &msg); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("read retried batches: %w", err)
		}
		get(id).LastError = msg
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("read retried batches: %w", err)
	}
	return out, nil
}

func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// DeadLetter is a batch the agent gave up on, with its body and the reason.
type DeadLetter struct {
	BatchID          string
	SyncID           int64
	SourcePlatformID int64
	Count            int
	Body             []byte
	Reason           string
	Attempts         int
	FailedAt         time.Time
}

// DeadLetters returns the dead letters of a sync with their bodies, oldest first.
func (s *Store) DeadLetters(ctx context.Context, syncID int64) ([]DeadLetter, error) {
	return s.deadLetters(ctx, syncID, "body")
}

// DeadLetterList returns the dead letters of a sync without their bodies, oldest first.
func (s *Store) DeadLetterList(ctx context.Context, syncID int64) ([]DeadLetter, error) {
	return s.deadLetters(ctx, syncID, "NULL")
}

func (s *Store) deadLetters(ctx context.Context, syncID int64, body string) ([]DeadLetter, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT batch_id, sync_id, source_platform_id, count, `+body+`, reason,
		attempts, failed_at FROM dead_letters WHERE sync_id = ? ORDER BY failed_at, batch_id`, syncID)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	out := []DeadLetter{}
	for rows.Next() {
		var d DeadLetter
		var at int64
		if err := rows.Scan(&d.BatchID, &d.SyncID, &d.SourcePlatformID, &d.Count, &d.Body, &d.Reason, &d.Attempts, &at); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("read dead letters: %w", err)
		}
		d.FailedAt = fromMS(at)
		out = append(out, d)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	return out, nil
}

// Run is one entry of the run history: a batch applied, found already applied, or given up on.
type Run struct {
	SyncID     int64
	BatchID    string
	Outcome    string
	Changes    int
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
}

// Runs returns up to limit latest runs of a sync, newest first.
func (s *Store) Runs(ctx context.Context, syncID int64, limit int) ([]Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sync_id, batch_id, outcome, changes, COALESCE(error, ''), started_at,
		finished_at FROM runs WHERE sync_id = ? ORDER BY id DESC LIMIT ?`, syncID, limit)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	var out []Run
	for rows.Next() {
		var r Run
		var started, finished int64
		if err := rows.Scan(&r.SyncID, &r.BatchID, &r.Outcome, &r.Changes, &r.Error, &started, &finished); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("read runs: %w", err)
		}
		r.StartedAt, r.FinishedAt = fromMS(started), fromMS(finished)
		out = append(out, r)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	return out, nil
}

// Cursor is how far the apply worker of a sync has got: the last batch it finished.
type Cursor struct {
	SyncID    int64
	BatchID   string
	LastSeq   int64
	UpdatedAt time.Time
}

// ApplyCursor returns the apply cursor of a sync, or ErrNotFound before its first batch.
func (s *Store) ApplyCursor(ctx context.Context, syncID int64) (Cursor, error) {
	c := Cursor{SyncID: syncID}
	var at int64
	err := s.db.QueryRowContext(ctx, "SELECT batch_id, last_seq, updated_at FROM apply_cursor WHERE sync_id = ?", syncID).
		Scan(&c.BatchID, &c.LastSeq, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Cursor{}, ErrNotFound
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("read apply cursor: %w", err)
	}
	c.UpdatedAt = fromMS(at)
	return c, nil
}
