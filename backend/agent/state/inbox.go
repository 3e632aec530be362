package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Inbox statuses of a received batch.
const (
	StatusPending = "pending" // stored, not yet applied
	StatusApplied = "applied" // applied to the application database; body dropped
	StatusDead    = "dead"    // given up on; the body lives in dead_letters
)

// Run outcomes recorded in the run history.
const (
	OutcomeApplied        = "applied"
	OutcomeAlreadyApplied = "already_applied"
	OutcomeDead           = "dead_letter"
)

// runsKept is how many runs per sync the history keeps.
const runsKept = 1000

// Batch is a received data delivery in the inbox. Body is the raw JSON body as it was
// signed; it is dropped once the batch is applied or moved to the dead letters. The row
// itself stays, so that a sender retrying the same batch id gets "duplicate", until
// PruneInbox deletes it (applied batches only, after the retention).
type Batch struct {
	Pos              int64
	BatchID          string
	SyncID           int64
	SourcePlatformID int64
	FirstSeq         int64
	LastSeq          int64
	Count            int
	Body             []byte
	Status           string
	ReceivedAt       time.Time
	OldestChangeAt   time.Time
	Attempts         int
	LastError        string
}

const batchColumns = `pos, batch_id, sync_id, source_platform_id, first_seq, last_seq, count, status,
	received_at, oldest_change_at, attempts, COALESCE(last_error, '')`

func scanBatch(row interface{ Scan(...any) error }, extra ...any) (Batch, error) {
	var b Batch
	var received, oldest int64
	dest := append([]any{&b.Pos, &b.BatchID, &b.SyncID, &b.SourcePlatformID, &b.FirstSeq, &b.LastSeq,
		&b.Count, &b.Status, &received, &oldest, &b.Attempts, &b.LastError}, extra...)
	if err := row.Scan(dest...); err != nil {
		return Batch{}, err
	}
	b.ReceivedAt = fromMS(received)
	b.OldestChangeAt = fromMS(oldest)
	return b, nil
}

// AddBatch stores b as pending, durably (the transaction is committed when it returns). When a
// batch with the same id is already stored, it stores nothing and returns added=false with
// the stored batch (without its body).
func (s *Store) AddBatch(ctx context.Context, b Batch) (added bool, existing Batch, err error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO inbox (batch_id, sync_id, source_platform_id, first_seq,
			last_seq, count, body, status, received_at, oldest_change_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)
		ON CONFLICT (batch_id) DO NOTHING`,
		b.BatchID, b.SyncID, b.SourcePlatformID, b.FirstSeq, b.LastSeq, b.Count, b.Body,
		ms(b.ReceivedAt), ms(b.OldestChangeAt))
	if err != nil {
		return false, Batch{}, fmt.Errorf("store batch: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, Batch{}, fmt.Errorf("store batch: %w", err)
	} else if n == 1 {
		return true, Batch{}, nil
	}
	existing, err = s.LookupBatch(ctx, b.BatchID)
	if err != nil {
		return false, Batch{}, err
	}
	return false, existing, nil
}

// LookupBatch returns the stored batch with the given id, without its body, or ErrNotFound.
func (s *Store) LookupBatch(ctx context.Context, batchID string) (Batch, error) {
	b, err := scanBatch(s.db.QueryRowContext(ctx, "SELECT "+batchColumns+" FROM inbox WHERE batch_id = ?", batchID))
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, ErrNotFound
	}
	if err != nil {
		return Batch{}, fmt.Errorf("look up batch: %w", err)
	}
	return b, nil
}

// NextBatch returns the pending batch of a sync that is to be applied next, with its body:
// the one with the lowest first seq, then the earliest received. It returns ErrNotFound
// when the sync has nothing pending.
func (s *Store) NextBatch(ctx context.Context, syncID int64) (Batch, error) {
	var body []byte
	row := s.db.QueryRowContext(ctx, "SELECT "+batchColumns+`, body FROM inbox
		WHERE sync_id = ? AND status = 'pending' ORDER BY first_seq, pos LIMIT 1`, syncID)
	b, err := scanBatch(row, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, ErrNotFound
	}
	if err != nil {
		return Batch{}, fmt.Errorf("read next batch: %w", err)
	}
	b.Body = body
	return b, nil
}

// RecordFailure notes a failed apply attempt of a pending batch: its attempt count (which
// survives a restart) and the reason.
func (s *Store) RecordFailure(ctx context.Context, batchID string, attempts int, reason string) error {
	_, err := s.db.ExecContext(ctx, "UPDATE inbox SET attempts = ?, last_error = ? WHERE batch_id = ? AND status = 'pending'",
		attempts, reason, batchID)
	if err != nil {
		return fmt.Errorf("record apply failure: %w", err)
	}
	return nil
}

// Applied is the outcome of applying one batch.
type Applied struct {
	Batch Batch
	// AlreadyApplied is true when the application database already held the batch (the
	// agent stopped after applying it and before recording it here).
	AlreadyApplied bool
	StartedAt      time.Time
	FinishedAt     time.Time
}

// MarkApplied records a batch as applied, in one transaction: the inbox row (its body
// dropped), the apply cursor, the sync's counters and the run history.
func (s *Store) MarkApplied(ctx context.Context, a Applied) error {
	outcome := OutcomeApplied
	if a.AlreadyApplied {
		outcome = OutcomeAlreadyApplied
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE inbox SET status = 'applied', body = NULL, done_at = ?, last_error = NULL
			WHERE batch_id = ? AND status = 'pending'`, ms(a.FinishedAt), a.Batch.BatchID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("batch %s is not pending", a.Batch.BatchID)
		}
		if err := advanceCursor(ctx, tx, a.Batch, a.FinishedAt); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sync_counters (sync_id, applied, last_sync) VALUES (?, ?, ?)
			ON CONFLICT (sync_id) DO UPDATE SET applied = applied + excluded.applied, last_sync = excluded.last_sync`,
			a.Batch.SyncID, a.Batch.Count, ms(a.FinishedAt)); err != nil {
			return err
		}
		return addRun(ctx, tx, a.Batch, outcome, "", a.StartedAt, a.FinishedAt)
	})
	if err != nil {
		return fmt.Errorf("mark batch applied: %w", err)
	}
	return nil
}

// MoveToDeadLetters gives up on a pending batch, in one transaction: its body moves to the
// dead letters with the reason, the inbox row is marked dead, the apply cursor moves past it
// and the sync's counters record the failure.
func (s *Store) MoveToDeadLetters(ctx context.Context, b Batch, reason string, startedAt, at time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO dead_letters (batch_id, sync_id, source_platform_id, count, body,
				reason, attempts, failed_at)
			SELECT batch_id, sync_id, source_platform_id, count, body, ?, ?, ? FROM inbox
			WHERE batch_id = ? AND status = 'pending'`, reason, b.Attempts, ms(at), b.BatchID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE inbox SET status = 'dead', body = NULL, done_at = ?, last_error = ?,
				attempts = ?
			WHERE batch_id = ? AND status = 'pending'`, ms(at), reason, b.Attempts, b.BatchID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("batch %s is not pending", b.BatchID)
		}
		if err := advanceCursor(ctx, tx, b, at); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sync_counters (sync_id, failed, error_message) VALUES (?, ?, ?)
			ON CONFLICT (sync_id) DO UPDATE SET failed = failed + excluded.failed,
				error_message = excluded.error_message`, b.SyncID, b.Count, reason); err != nil {
			return err
		}
		return addRun(ctx, tx, b, OutcomeDead, reason, startedAt, at)
	})
	if err != nil {
		return fmt.Errorf("move batch to dead letters: %w", err)
	}
	return nil
}

func advanceCursor(ctx context.Context, tx *sql.Tx, b Batch, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO apply_cursor (sync_id, batch_id, last_seq, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (sync_id) DO UPDATE SET batch_id = excluded.batch_id, last_seq = excluded.last_seq,
			updated_at = excluded.updated_at`, b.SyncID, b.BatchID, b.LastSeq, ms(at))
	return err
}

func addRun(ctx context.Context, tx *sql.Tx, b Batch, outcome, reason string, started, finished time.Time) error {
	var errText any
	if reason != "" {
		errText = reason
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO runs (sync_id, batch_id, outcome, changes, error, started_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, b.SyncID, b.BatchID, outcome, b.Count, errText, ms(started), ms(finished)); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE sync_id = ? AND id <= (
		SELECT id FROM runs WHERE sync_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, b.SyncID, b.SyncID, runsKept)
	return err
}

// pruneChunk is how many inbox rows one pruning statement deletes, so that pruning a large
// backlog never holds the database for long.
const pruneChunk = 5000

// PruneInbox deletes the batches applied at or before before and returns how many it
// deleted. Their ids are forgotten with them: a batch id stays a duplicate until it is
// pruned. Pending batches and batches in the dead letters are kept.
func (s *Store) PruneInbox(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, `DELETE FROM inbox WHERE pos IN (
			SELECT pos FROM inbox WHERE status = 'applied' AND done_at <= ? LIMIT ?)`, ms(before), pruneChunk)
		if err != nil {
			return total, fmt.Errorf("prune inbox: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune inbox: %w", err)
		}
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}

// RequeueDeadLetters moves every dead letter of a sync back to the inbox as pending, in one
// transaction, and returns their batch ids in the order they will be applied (by first seq,
// then arrival). Each gets a fresh attempt count; it keeps its last reason and stays marked
// as requeued, so that the sync reports errors until it is applied. The changes it carries
// no longer count as failed.
func (s *Store) RequeueDeadLetters(ctx context.Context, syncID int64) ([]string, error) {
	ids := []string{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT d.batch_id, d.count FROM dead_letters d
			JOIN inbox i ON i.batch_id = d.batch_id AND i.status = 'dead'
			WHERE d.sync_id = ? ORDER BY i.first_seq, i.pos`, syncID)
		if err != nil {
			return err
		}
		var counts []int64
		for rows.Next() {
			var id string
			var n int64
			if err := rows.Scan(&id, &n); err != nil {
				_ = rows.Close()
				return err
			}
			ids = append(ids, id)
			counts = append(counts, n)
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		var failed int64
		for i, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE inbox SET status = 'pending', requeued = 1, attempts = 0,
					done_at = NULL, body = (SELECT body FROM dead_letters WHERE batch_id = ?)
				WHERE batch_id = ? AND status = 'dead'`, id, id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM dead_letters WHERE batch_id = ?", id); err != nil {
				return err
			}
			failed += counts[i]
		}
		if failed == 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, "UPDATE sync_counters SET failed = MAX(0, failed - ?) WHERE sync_id = ?",
			failed, syncID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("requeue dead letters: %w", err)
	}
	return ids, nil
}
