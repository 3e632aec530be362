package state

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ReconcileRunsKept is how many reconciliation runs of a sync the store keeps.
const ReconcileRunsKept = 20

// SaveReconcileRun stores (or replaces) the JSON body of a reconciliation run of a sync and
// drops all but the newest ReconcileRunsKept runs of that sync.
func (s *Store) SaveReconcileRun(ctx context.Context, syncID int64, runID string, started time.Time, body []byte) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO reconcile_runs (run_id, sync_id, started_at, body) VALUES (?, ?, ?, ?)
			ON CONFLICT (run_id) DO UPDATE SET body = excluded.body`, runID, syncID, started.UnixMilli(), string(body)); err != nil {
			return fmt.Errorf("save reconcile run: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM reconcile_runs WHERE sync_id = ? AND run_id NOT IN (
			SELECT run_id FROM reconcile_runs WHERE sync_id = ? ORDER BY started_at DESC, run_id DESC LIMIT ?)`,
			syncID, syncID, ReconcileRunsKept); err != nil {
			return fmt.Errorf("prune reconcile runs: %w", err)
		}
		return nil
	})
}

// ReconcileRuns returns the stored runs' JSON bodies by sync, oldest first.
func (s *Store) ReconcileRuns(ctx context.Context) (map[int64][][]byte, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sync_id, body FROM reconcile_runs ORDER BY sync_id, started_at, run_id`)
	if err != nil {
		return nil, fmt.Errorf("read reconcile runs: %w", err)
	}
	defer rows.Close()
	out := map[int64][][]byte{}
	for rows.Next() {
		var id int64
		var body string
		if err := rows.Scan(&id, &body); err != nil {
			return nil, fmt.Errorf("read reconcile runs: %w", err)
		}
		out[id] = append(out[id], []byte(body))
	}
	return out, rows.Err()
}
