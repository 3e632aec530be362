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

// Enrollment is the platform this agent serves and the token the control center gave it.
// PlatformToken and PreviousToken are secrets: they are never logged nor returned by any
// endpoint.
type Enrollment struct {
	Platform protocol.Platform
	// PlatformToken is the newest platform token: the one given at enrollment, or by the
	// latest rotation.
	PlatformToken string
	EnrolledAt    time.Time

	// PreviousToken is the token the latest rotation replaced, "" when there is none. While
	// the rotation is pending (ConfirmedAt zero) it still opens the control plane; once the
	// rotation is confirmed it only verifies deliveries, for a grace period.
	PreviousToken string
	// RotatedAt is when the latest rotation was received (zero without one).
	RotatedAt time.Time
	// ConfirmedAt is when a control request first verified with PlatformToken after the
	// latest rotation; zero while the rotation is pending.
	ConfirmedAt time.Time
}

// RotationPending reports whether a rotation waits for its confirmation: both the previous
// and the new token open the control plane.
func (e Enrollment) RotationPending() bool {
	return e.PreviousToken != "" && e.ConfirmedAt.IsZero()
}

// ControlTokens are the tokens whose K_ctl opens the control plane, newest first.
func (e Enrollment) ControlTokens() []string {
	if e.RotationPending() {
		return []string{e.PlatformToken, e.PreviousToken}
	}
	return []string{e.PlatformToken}
}

// DataTokens are the tokens whose pair keys verify deliveries at now, newest first: the
// previous token stays valid while the rotation is pending and for grace after its
// confirmation.
func (e Enrollment) DataTokens(now time.Time, grace time.Duration) []string {
	if e.PreviousToken != "" && (e.ConfirmedAt.IsZero() || now.Before(e.ConfirmedAt.Add(grace))) {
		return []string{e.PlatformToken, e.PreviousToken}
	}
	return []string{e.PlatformToken}
}

// queryRower is a *sql.DB or a *sql.Tx.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Enrollment returns the stored enrollment, or ErrNotFound when the agent is not enrolled.
func (s *Store) Enrollment(ctx context.Context) (Enrollment, error) {
	return readEnrollment(ctx, s.db)
}

func readEnrollment(ctx context.Context, q queryRower) (Enrollment, error) {
	var (
		e                      Enrollment
		platform               string
		at                     int64
		previous               sql.NullString
		rotatedAt, confirmedAt sql.NullInt64
	)
	err := q.QueryRowContext(ctx, `SELECT platform, platform_token, enrolled_at, previous_token, rotated_at,
			confirmed_at FROM enrollment WHERE id = 1`).
		Scan(&platform, &e.PlatformToken, &at, &previous, &rotatedAt, &confirmedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Enrollment{}, ErrNotFound
	}
	if err != nil {
		return Enrollment{}, fmt.Errorf("read enrollment: %w", err)
	}
	if err := json.Unmarshal([]byte(platform), &e.Platform); err != nil {
		return Enrollment{}, fmt.Errorf("decode enrolled platform: %w", err)
	}
	e.EnrolledAt = fromMS(at)
	e.PreviousToken = previous.String
	if rotatedAt.Valid {
		e.RotatedAt = fromMS(rotatedAt.Int64)
	}
	if confirmedAt.Valid {
		e.ConfirmedAt = fromMS(confirmedAt.Int64)
	}
	return e, nil
}

// execer is a *sql.DB or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// SaveEnrollment stores e, replacing any earlier enrollment (its enrollment time excepted).
func (s *Store) SaveEnrollment(ctx context.Context, e Enrollment) error {
	return saveEnrollment(ctx, s.db, e)
}

func saveEnrollment(ctx context.Context, x execer, e Enrollment) error {
	platform, err := json.Marshal(e.Platform)
	if err != nil {
		return fmt.Errorf("encode enrolled platform: %w", err)
	}
	nullTime := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return ms(t)
	}
	var previous any
	if e.PreviousToken != "" {
		previous = e.PreviousToken
	}
	_, err = x.ExecContext(ctx, `INSERT INTO enrollment (id, platform_id, platform, platform_token, enrolled_at,
			previous_token, rotated_at, confirmed_at)
		VALUES (1, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET platform_id = excluded.platform_id, platform = excluded.platform,
			platform_token = excluded.platform_token, previous_token = excluded.previous_token,
			rotated_at = excluded.rotated_at, confirmed_at = excluded.confirmed_at`,
		e.Platform.ID, string(platform), e.PlatformToken, ms(e.EnrolledAt), previous, nullTime(e.RotatedAt),
		nullTime(e.ConfirmedAt))
	if err != nil {
		return fmt.Errorf("save enrollment: %w", err)
	}
	return nil
}

// RotateToken makes token the platform token, atomically and durably, and returns the
// enrollment as stored:
//   - the token in force again changes nothing (a retried rotation);
//   - while a rotation is pending, token replaces its new token and the previous token stays
//     (giving the previous token back ends the rotation);
//   - otherwise the token in force becomes the previous token and the rotation is pending.
//
// It returns ErrNotFound when the agent is not enrolled.
func (s *Store) RotateToken(ctx context.Context, token string, now time.Time) (Enrollment, error) {
	var out Enrollment
	err := s.tx(ctx, func(tx *sql.Tx) error {
		e, err := readEnrollment(ctx, tx)
		if err != nil {
			return err
		}
		out = e
		if token == e.PlatformToken {
			return nil
		}
		if !e.RotationPending() {
			e.PreviousToken = e.PlatformToken
		}
		e.PlatformToken = token
		e.RotatedAt, e.ConfirmedAt = now, time.Time{}
		if e.PreviousToken == e.PlatformToken {
			e.PreviousToken = ""
		}
		if err := saveEnrollment(ctx, tx, e); err != nil {
			return err
		}
		out = e
		return nil
	})
	if err != nil {
		return Enrollment{}, fmt.Errorf("rotate platform token: %w", err)
	}
	return out, nil
}

// ConfirmToken confirms a pending rotation whose new token is token, at now; from then on
// the previous token no longer opens the control plane. It reports whether it confirmed
// anything: a rotation already confirmed, or replaced by a newer one, is left as it is.
func (s *Store) ConfirmToken(ctx context.Context, token string, now time.Time) (Enrollment, bool, error) {
	var (
		out       Enrollment
		confirmed bool
	)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		e, err := readEnrollment(ctx, tx)
		if err != nil {
			return err
		}
		out = e
		if !e.RotationPending() || e.PlatformToken != token {
			return nil
		}
		e.ConfirmedAt = now
		if err := saveEnrollment(ctx, tx, e); err != nil {
			return err
		}
		out, confirmed = e, true
		return nil
	})
	if err != nil {
		return Enrollment{}, false, fmt.Errorf("confirm platform token: %w", err)
	}
	return out, confirmed, nil
}

// ForgetPreviousToken erases the previous token of a rotation confirmed at or before
// before, when its grace period is over. It reports whether it erased it.
func (s *Store) ForgetPreviousToken(ctx context.Context, before time.Time) (Enrollment, bool, error) {
	var (
		out    Enrollment
		forgot bool
	)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		e, err := readEnrollment(ctx, tx)
		if err != nil {
			return err
		}
		out = e
		if e.PreviousToken == "" || e.ConfirmedAt.IsZero() || e.ConfirmedAt.After(before) {
			return nil
		}
		e.PreviousToken = ""
		if err := saveEnrollment(ctx, tx, e); err != nil {
			return err
		}
		out, forgot = e, true
		return nil
	})
	if err != nil {
		return Enrollment{}, false, fmt.Errorf("forget the previous platform token: %w", err)
	}
	return out, forgot, nil
}
