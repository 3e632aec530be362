package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// ErrStaleRevision is returned by PutState for a revision older than the one in force.
var ErrStaleRevision = errors.New("revision is older than the state in force")

// DesiredState returns the desired state in force, or ErrNotFound before the first one.
// The returned state holds the peers' keys: redact it before it leaves the agent.
func (s *Store) DesiredState(ctx context.Context) (protocol.State, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, "SELECT state FROM desired_state WHERE id = 1").Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return protocol.State{}, ErrNotFound
	}
	if err != nil {
		return protocol.State{}, fmt.Errorf("read desired state: %w", err)
	}
	var st protocol.State
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return protocol.State{}, fmt.Errorf("decode desired state: %w", err)
	}
	return st, nil
}

// PutState replaces the desired state in force with st, atomically. A revision older than
// the one in force is refused with ErrStaleRevision; the same or a newer one replaces it.
func (s *Store) PutState(ctx context.Context, st protocol.State, now time.Time) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode desired state: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var current int64
		err := tx.QueryRowContext(ctx, "SELECT revision FROM desired_state WHERE id = 1").Scan(&current)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err == nil && st.Revision < current {
			return ErrStaleRevision
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO desired_state (id, revision, state, updated_at) VALUES (1, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, state = excluded.state,
				updated_at = excluded.updated_at`, st.Revision, string(raw), ms(now))
		return err
	})
	if errors.Is(err, ErrStaleRevision) {
		return err
	}
	if err != nil {
		return fmt.Errorf("save desired state: %w", err)
	}
	return nil
}
