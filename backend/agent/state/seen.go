package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

var _ protocol.SeenStore = (*Store)(nil)

// Remember implements protocol.SeenStore with persisted ids, so that a restart opens no
// replay window. An id recorded less than protocol.ReplayWindow before now is reported as
// seen and left as it is; an older record is refreshed.
func (s *Store) Remember(ctx context.Context, id string, now time.Time) (bool, error) {
	seen := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var at int64
		err := tx.QueryRowContext(ctx, "SELECT seen_at FROM seen_ids WHERE id = ?", id).Scan(&at)
		switch {
		case err == nil && now.Sub(fromMS(at)) < protocol.ReplayWindow:
			seen = true
			return nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO seen_ids (id, seen_at) VALUES (?, ?)
			ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at`, id, ms(now))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("remember message id: %w", err)
	}
	return seen, nil
}

// PruneSeen forgets the ids seen more than protocol.ReplayWindow before now and returns how
// many it removed.
func (s *Store) PruneSeen(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM seen_ids WHERE seen_at <= ?", ms(now.Add(-protocol.ReplayWindow)))
	if err != nil {
		return 0, fmt.Errorf("prune seen ids: %w", err)
	}
	return res.RowsAffected()
}
