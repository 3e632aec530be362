package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// AgentStatus is what the control center saw when it polled a platform's agent.
type AgentStatus struct {
	ID         int64     `json:"id"`
	PlatformID int64     `json:"platform_id"`
	At         time.Time `json:"at"`
	// Online is true when the agent answered.
	Online   bool   `json:"online"`
	Version  string `json:"version"`
	Revision int64  `json:"revision"`
	// Status is the agent's GET /api/status answer, nil when it gave none.
	Status *protocol.Status `json:"status"`
	// Error says why the agent could not be reached or answered with an error; it must
	// never contain a secret.
	Error *string `json:"error"`
}

// RecordStatus stores a status snapshot and returns it as stored. Version and Revision
// default to those of Status; At defaults to now. Snapshots beyond StatusRetention per
// platform are dropped, oldest first.
//
// When the agent answered with a status, the observed columns of its syncs (has_errors,
// error_message, last_sync) are updated from the latest answers of both ends of each sync:
// has_errors when either end reports errors, last_sync from the target (when records were
// last applied) or else from the source. These columns are observations, not desired
// state, so the revision is not bumped.
func (s *Store) RecordStatus(ctx context.Context, st AgentStatus) (AgentStatus, error) {
	if st.Status != nil {
		if st.Status.PlatformID != st.PlatformID {
			return AgentStatus{}, invalid("status", "agent reports platform %d, expected %d", st.Status.PlatformID, st.PlatformID)
		}
		if st.Version == "" {
			st.Version = st.Status.Version
		}
		if st.Revision == 0 {
			st.Revision = st.Status.Revision
		}
	}
	if st.At.IsZero() {
		st.At = s.now()
	}
	st.At = st.At.UTC().Truncate(time.Millisecond)
	st.Error = trimmedOrNil(st.Error)
	var raw sql.NullString
	if st.Status != nil {
		b, err := json.Marshal(st.Status)
		if err != nil {
			return AgentStatus{}, fmt.Errorf("encode status: %w", err)
		}
		raw = sql.NullString{String: string(b), Valid: true}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := getPlatform(ctx, tx, st.PlatformID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO agent_status (platform_id, at, online, version, revision, raw, error)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			st.PlatformID, formatTime(st.At), st.Online, st.Version, st.Revision, raw, nullString(st.Error))
		if err != nil {
			return fmt.Errorf("record status: %w", err)
		}
		if st.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("record status: %w", err)
		}
		if err := prune(ctx, tx, "agent_status", st.PlatformID, s.statusRetention()); err != nil {
			return err
		}
		if st.Online && st.Status != nil {
			return observeSyncs(ctx, tx, st.Status)
		}
		return nil
	})
	if err != nil {
		return AgentStatus{}, err
	}
	return st, nil
}

// prune keeps the newest keep rows of a platform in a history table (agent_status or
// push_history) and deletes the others.
func prune(ctx context.Context, tx *sql.Tx, table string, platformID int64, keep int) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE platform_id = ? AND id NOT IN
		(SELECT id FROM `+table+` WHERE platform_id = ? ORDER BY at DESC, id DESC LIMIT ?)`, platformID, platformID, keep)
	if err != nil {
		return fmt.Errorf("prune %s: %w", table, err)
	}
	return nil
}

// observeSyncs updates has_errors, error_message and last_sync of the syncs a status
// reports on, merging the latest answers of each sync's source and target agents.
func observeSyncs(ctx context.Context, tx *sql.Tx, st *protocol.Status) error {
	seen := make(map[int64]bool)
	latest := make(map[int64]*protocol.Status)
	for _, ss := range st.Syncs {
		if seen[ss.ID] {
			continue
		}
		seen[ss.ID] = true
		sy, err := getSync(ctx, tx, ss.ID)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the agent last received its state
		}
		if err != nil {
			return err
		}
		var ends [2]*protocol.SyncStatus // source, target
		for i, end := range []struct {
			platformID int64
			role       string
		}{{sy.SourcePlatformID, "source"}, {sy.TargetPlatformID, "target"}} {
			ps, ok := latest[end.platformID]
			if !ok {
				if ps, err = latestAnswer(ctx, tx, end.platformID); err != nil {
					return err
				}
				latest[end.platformID] = ps
			}
			if ps == nil {
				continue
			}
			for j := range ps.Syncs {
				if ps.Syncs[j].ID == sy.ID && ps.Syncs[j].Role == end.role {
					ends[i] = &ps.Syncs[j]
					break
				}
			}
		}
		hasErrors, msg, last := mergeEnds(ends[0], ends[1])
		if _, err := tx.ExecContext(ctx, `UPDATE syncs SET has_errors = ?, error_message = ?, last_sync = ? WHERE id = ?`,
			hasErrors, nullString(msg), nullString(formatTimePtr(last)), sy.ID); err != nil {
			return fmt.Errorf("observe sync %d: %w", sy.ID, err)
		}
	}
	return nil
}

// latestAnswer returns the newest status an agent answered with, or nil.
func latestAnswer(ctx context.Context, tx *sql.Tx, platformID int64) (*protocol.Status, error) {
	var raw string
	err := tx.QueryRowContext(ctx, `SELECT raw FROM agent_status WHERE platform_id = ? AND online = 1 AND raw IS NOT NULL
		ORDER BY at DESC, id DESC LIMIT 1`, platformID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read status of platform %d: %w", platformID, err)
	}
	var st protocol.Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, fmt.Errorf("decode status of platform %d: %w", platformID, err)
	}
	return &st, nil
}

// mergeEnds folds the source's and the target's view of one sync into its observed columns.
func mergeEnds(src, dst *protocol.SyncStatus) (hasErrors bool, msg *string, last *time.Time) {
	var msgs []string
	for _, end := range []struct {
		name string
		s    *protocol.SyncStatus
	}{{"source", src}, {"target", dst}} {
		if end.s == nil || !end.s.HasErrors {
			continue
		}
		hasErrors = true
		m := "error"
		if end.s.ErrorMessage != nil && strings.TrimSpace(*end.s.ErrorMessage) != "" {
			m = strings.TrimSpace(*end.s.ErrorMessage)
		}
		msgs = append(msgs, end.name+": "+m)
	}
	if len(msgs) > 0 {
		joined := strings.Join(msgs, "; ")
		msg = &joined
	}
	for _, end := range []*protocol.SyncStatus{dst, src} {
		if end == nil || end.LastSync == nil {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, *end.LastSync); err == nil {
			t = t.UTC().Truncate(time.Millisecond)
			return hasErrors, msg, &t
		}
	}
	return hasErrors, msg, nil
}

const agentStatusColumns = `id, platform_id, at, online, version, revision, raw, error`

func scanAgentStatus(row scanner) (AgentStatus, error) {
	var (
		st       AgentStatus
		at       string
		raw, msg sql.NullString
	)
	if err := row.Scan(&st.ID, &st.PlatformID, &at, &st.Online, &st.Version, &st.Revision, &raw, &msg); err != nil {
		return AgentStatus{}, err
	}
	var err error
	if st.At, err = parseTime(at); err != nil {
		return AgentStatus{}, err
	}
	st.Error = stringPtr(msg)
	if raw.Valid {
		st.Status = &protocol.Status{}
		if err := json.Unmarshal([]byte(raw.String), st.Status); err != nil {
			return AgentStatus{}, fmt.Errorf("decode status %d: %w", st.ID, err)
		}
	}
	return st, nil
}

// LatestStatus returns the newest status snapshot of a platform, or ErrNotFound.
func (s *Store) LatestStatus(ctx context.Context, platformID int64) (AgentStatus, error) {
	st, err := scanAgentStatus(s.db.QueryRowContext(ctx, `SELECT `+agentStatusColumns+` FROM agent_status
		WHERE platform_id = ? ORDER BY at DESC, id DESC LIMIT 1`, platformID))
	if errors.Is(err, sql.ErrNoRows) {
		return AgentStatus{}, fmt.Errorf("status of platform %d: %w", platformID, ErrNotFound)
	}
	if err != nil {
		return AgentStatus{}, fmt.Errorf("latest status: %w", err)
	}
	return st, nil
}

// LatestStatuses returns the newest status snapshot of every platform that has one,
// ordered by platform id.
func (s *Store) LatestStatuses(ctx context.Context) ([]AgentStatus, error) {
	out, err := queryAll(ctx, s.db, scanAgentStatus, `SELECT `+agentStatusColumns+` FROM (
			SELECT *, ROW_NUMBER() OVER (PARTITION BY platform_id ORDER BY at DESC, id DESC) AS n FROM agent_status
		) WHERE n = 1 ORDER BY platform_id`)
	if err != nil {
		return nil, fmt.Errorf("latest statuses: %w", err)
	}
	return out, nil
}

// Results of a desired-state push.
const (
	PushOK          = "ok"
	PushFailed      = "failed"
	PushUnreachable = "unreachable"
)

// Push is the result of pushing the desired state to one agent.
type Push struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	PlatformID int64     `json:"platform_id"`
	Revision   int64     `json:"revision"`
	// Result is PushOK, PushFailed or PushUnreachable.
	Result string `json:"result"`
	// Code is the protocol error code of a failed push, empty otherwise.
	Code string `json:"code"`
	// Message says why a push failed; it must never contain a secret.
	Message    string `json:"message"`
	DurationMS int64  `json:"duration_ms"`
}

// RecordPush stores a push result and returns it as stored; At defaults to now. Results
// beyond PushRetention per platform are dropped, oldest first. It does not change the
// platform's acknowledged revision: call SetAcked for that.
func (s *Store) RecordPush(ctx context.Context, p Push) (Push, error) {
	switch p.Result {
	case PushOK, PushFailed, PushUnreachable:
	default:
		return Push{}, invalid("result", "result must be %q, %q or %q", PushOK, PushFailed, PushUnreachable)
	}
	if p.Revision < 0 {
		return Push{}, invalid("revision", "revision must be 0 or more")
	}
	if p.DurationMS < 0 {
		return Push{}, invalid("duration_ms", "duration_ms must be 0 or more")
	}
	if p.At.IsZero() {
		p.At = s.now()
	}
	p.At = p.At.UTC().Truncate(time.Millisecond)
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := getPlatform(ctx, tx, p.PlatformID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO push_history (at, platform_id, revision, result, code, message, duration_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			formatTime(p.At), p.PlatformID, p.Revision, p.Result, p.Code, p.Message, p.DurationMS)
		if err != nil {
			return fmt.Errorf("record push: %w", err)
		}
		if p.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("record push: %w", err)
		}
		return prune(ctx, tx, "push_history", p.PlatformID, s.pushRetention())
	})
	if err != nil {
		return Push{}, err
	}
	return p, nil
}

// Kinds of Activity.
const (
	ActivityPush       = "push"
	ActivityAgentError = "agent_error"
)

// Activity is one line of the control center's activity feed: a push, or an agent that
// started failing (an error that differs from the one its previous snapshot had).
type Activity struct {
	Kind         string    `json:"kind"`
	At           time.Time `json:"at"`
	PlatformID   int64     `json:"platform_id"`
	PlatformName string    `json:"platform_name"`
	Revision     int64     `json:"revision"`
	// Result is the push result, or for an agent error "unreachable" (no answer) or "error".
	Result     string `json:"result"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	DurationMS int64  `json:"duration_ms"`
}

// Limits of Activity.
const (
	DefaultActivityLimit = 100
	MaxActivityLimit     = 1000
)

// Activity returns the newest pushes and agent errors, newest first. A limit of 0 or less
// means DefaultActivityLimit; it is capped at MaxActivityLimit. An agent failing with the
// same error poll after poll appears once, when the error first appeared.
func (s *Store) Activity(ctx context.Context, limit int) ([]Activity, error) {
	out, err := queryAll(ctx, s.db, scanActivity, `SELECT kind, at, platform_id, name, revision, result, code, message, duration_ms FROM (
			SELECT 'push' AS kind, h.at, h.platform_id, p.name, h.revision, h.result, h.code, h.message,
				h.duration_ms, h.id
			FROM push_history h JOIN platforms p ON p.id = h.platform_id
		UNION ALL
			SELECT 'agent_error', a.at, a.platform_id, p.name, a.revision,
				CASE WHEN a.online THEN 'error' ELSE 'unreachable' END, '', a.error, 0, a.id
			FROM (SELECT *, LAG(error) OVER w AS prev_error, LAG(id) OVER w AS prev_id
				FROM agent_status WINDOW w AS (PARTITION BY platform_id ORDER BY at, id)) a
			JOIN platforms p ON p.id = a.platform_id
			WHERE a.error IS NOT NULL AND (a.prev_id IS NULL OR a.prev_error IS NULL OR a.prev_error != a.error)
		) ORDER BY at DESC, id DESC LIMIT ?`, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("activity: %w", err)
	}
	return out, nil
}

func scanActivity(row scanner) (Activity, error) {
	var (
		a  Activity
		at string
	)
	err := row.Scan(&a.Kind, &at, &a.PlatformID, &a.PlatformName, &a.Revision, &a.Result, &a.Code, &a.Message, &a.DurationMS)
	if err != nil {
		return Activity{}, err
	}
	a.At, err = parseTime(at)
	return a, err
}

// clampLimit applies DefaultActivityLimit and MaxActivityLimit.
func clampLimit(limit int) int {
	if limit <= 0 {
		return DefaultActivityLimit
	}
	return min(limit, MaxActivityLimit)
}

// Pushes returns the newest push results of a platform (of every platform when platformID
// is 0), newest first, with the limits of Activity.
func (s *Store) Pushes(ctx context.Context, platformID int64, limit int) ([]Push, error) {
	out, err := queryAll(ctx, s.db, scanPush, `SELECT id, at, platform_id, revision, result, code, message, duration_ms
		FROM push_history WHERE ? = 0 OR platform_id = ? ORDER BY at DESC, id DESC LIMIT ?`,
		platformID, platformID, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("pushes: %w", err)
	}
	return out, nil
}

func scanPush(row scanner) (Push, error) {
	var (
		p  Push
		at string
	)
	if err := row.Scan(&p.ID, &at, &p.PlatformID, &p.Revision, &p.Result, &p.Code, &p.Message, &p.DurationMS); err != nil {
		return Push{}, err
	}
	var err error
	p.At, err = parseTime(at)
	return p, err
}
