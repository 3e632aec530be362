package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// purgeChunk bounds the rows one purge transaction deletes, so that a large purge never
// holds the state database for long.
const purgeChunk = 10000

var queueDDL = []string{
	// AUTOINCREMENT: ids are never reused after a purge, so an id is a safe cursor.
	`CREATE TABLE IF NOT EXISTS capture_queue (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		outbox_seq INTEGER NOT NULL UNIQUE,
		model TEXT NOT NULL,
		op TEXT NOT NULL,
		row_image TEXT NOT NULL,
		origin_platform_id INTEGER NOT NULL DEFAULT 0,
		changed_at INTEGER NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS capture_queue_model ON capture_queue (model, id)`,
	`CREATE TABLE IF NOT EXISTS capture_meta (
		name TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	) WITHOUT ROWID`,
}

// Names of capture_meta rows.
const (
	// metaUnconfirmed is the lowest queue id of the last Append: the queue rows from it on
	// may still have their originals in the outbox.
	metaUnconfirmed = "unconfirmed_from"
	// metaPurged is the highest queue id purged so far.
	metaPurged = "purged_upto"
)

// Queue is the capture queue in the agent's state database: the changes the Pump moved out
// of the application database's outbox, in the order they became visible there. Its ids
// are assigned by a single writer (the Pump), so readers may use them as cursors.
type Queue struct {
	db      *sql.DB
	changed signal
	// appendFull is appendSQL(appendChunk), prepared once for the pool.
	appendFull *sql.Stmt

	mu sync.Mutex
	// unconfirmed is the lowest queue id whose outbox original may still exist, 0 when
	// every copied original is known to be deleted.
	unconfirmed int64
}

// OpenQueue creates the queue's tables in the state database if they are missing and
// loads its bookkeeping. db may be the state store's own pool, even with a single
// connection: the queue never holds a result set open while it runs another statement.
func OpenQueue(ctx context.Context, db *sql.DB) (*Queue, error) {
	for _, s := range queueDDL {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("create capture queue: %w", err)
		}
	}
	st, err := db.PrepareContext(ctx, appendSQL(appendChunk))
	if err != nil {
		return nil, fmt.Errorf("prepare capture queue append: %w", err)
	}
	q := &Queue{db: db, appendFull: st}
	v, err := q.meta(ctx, metaUnconfirmed)
	if err != nil {
		return nil, err
	}
	q.unconfirmed = v
	return q, nil
}

func (q *Queue) meta(ctx context.Context, name string) (int64, error) {
	var v int64
	err := q.db.QueryRowContext(ctx, `SELECT value FROM capture_meta WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read capture queue %s: %w", name, err)
	}
	return v, nil
}

// Changed returns a channel that is closed when rows are next appended. Take it before
// reading, so that no append between the read and the wait goes unnoticed.
func (q *Queue) Changed() <-chan struct{} { return q.changed.wait() }

// appendChunk is the number of rows one INSERT statement of Append carries.
const appendChunk = 128

// Append copies outbox rows into the queue in one transaction, in the given order. A row
// whose outbox seq is queued already is skipped, so copying the same rows again (after a
// crash before their deletion from the outbox) adds nothing. The rows stay unconfirmed
// (Purge keeps them) until Confirm reports their originals deleted. It returns how many
// rows it added.
func (q *Queue) Append(ctx context.Context, rows []sqldb.RawOutboxRow, now time.Time) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	var (
		added  int
		lowest int64
		args   = make([]any, 0, 6*appendChunk)
		stmts  = map[int]*sql.Stmt{}
	)
	err := inTx(ctx, q.db, func(tx *sql.Tx) error {
		defer func() {
			for _, st := range stmts {
				st.Close()
			}
		}()
		for start := 0; start < len(rows); start += appendChunk {
			chunk := rows[start:min(start+appendChunk, len(rows))]
			st := stmts[len(chunk)]
			if st == nil {
				var err error
				if len(chunk) == appendChunk {
					st = tx.StmtContext(ctx, q.appendFull)
				} else if st, err = tx.PrepareContext(ctx, appendSQL(len(chunk))); err != nil {
					return err
				}
				stmts[len(chunk)] = st
			}
			args = args[:0]
			for i := range chunk {
				r := &chunk[i]
				changed := r.ChangedAt
				if changed.IsZero() {
					changed = now
				}
				// A string, so that the column keeps TEXT values.
				args = append(args, r.Seq, r.Model, r.Op, string(r.Image), r.OriginPlatformID, changed.UnixMilli())
			}
			n, low, err := insertReturning(ctx, st, args)
			if err != nil {
				return err
			}
			added += n
			if n < len(chunk) { // some were queued before: they are unconfirmed again
				if low, err = lowestOf(ctx, tx, chunk); err != nil {
					return err
				}
			}
			if lowest == 0 || (low != 0 && low < lowest) {
				lowest = low
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO capture_meta (name, value) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, metaUnconfirmed, lowest)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("append to capture queue: %w", err)
	}
	q.mu.Lock()
	q.unconfirmed = lowest
	q.mu.Unlock()
	if added > 0 {
		q.changed.broadcast()
	}
	return added, nil
}

// appendSQL inserts n rows, skipping queued outbox seqs, and returns the new ids.
func appendSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO capture_queue (outbox_seq, model, op, row_image, origin_platform_id, changed_at) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(` ON CONFLICT (outbox_seq) DO NOTHING RETURNING id`)
	return b.String()
}

// insertReturning runs an appendSQL statement and returns how many rows it inserted and
// the lowest new id.
func insertReturning(ctx context.Context, st *sql.Stmt, args []any) (int, int64, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	n, low := 0, int64(0)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return 0, 0, err
		}
		n++
		if low == 0 || id < low {
			low = id
		}
	}
	return n, low, rows.Err()
}

// lowestOf returns the lowest queue id among the rows of chunk.
func lowestOf(ctx context.Context, tx *sql.Tx, chunk []sqldb.RawOutboxRow) (int64, error) {
	args := make([]any, len(chunk))
	for i := range chunk {
		args[i] = chunk[i].Seq
	}
	var low sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT MIN(id) FROM capture_queue WHERE outbox_seq IN (?`+
		strings.Repeat(", ?", len(chunk)-1)+`)`, args...).Scan(&low)
	return low.Int64, err
}

// Confirm records that the outbox originals of every appended row are deleted, so Purge
// may remove those rows once the senders are past them.
func (q *Queue) Confirm() {
	q.mu.Lock()
	q.unconfirmed = 0
	q.mu.Unlock()
}

// unconfirmedSeqs returns the outbox seqs of the rows whose originals may still exist.
func (q *Queue) unconfirmedSeqs(ctx context.Context) ([]int64, error) {
	q.mu.Lock()
	from := q.unconfirmed
	q.mu.Unlock()
	if from == 0 {
		return nil, nil
	}
	rows, err := q.db.QueryContext(ctx, `SELECT outbox_seq FROM capture_queue WHERE id >= ? ORDER BY id`, from)
	if err != nil {
		return nil, fmt.Errorf("read unconfirmed queue rows: %w", err)
	}
	defer rows.Close()
	var seqs []int64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("read unconfirmed queue rows: %w", err)
		}
		seqs = append(seqs, s)
	}
	return seqs, rows.Err()
}

// hasUnconfirmed reports whether some appended rows may still have outbox originals.
func (q *Queue) hasUnconfirmed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.unconfirmed != 0
}

// MaxID returns the highest queue id ever assigned (0 for a new queue), purged or not.
func (q *Queue) MaxID(ctx context.Context) (int64, error) {
	var id int64
	err := q.db.QueryRowContext(ctx,
		`SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'capture_queue'), 0)`).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("read capture queue max id: %w", err)
	}
	return id, nil
}

// Row is one queued change as Scan hands it out.
type Row struct {
	ID int64
	// Model is the table the change belongs to.
	Model string
	// Op is protocol.EventCreated, EventUpdated or EventDeleted.
	Op string
	// Image is the row image as a JSON object (before the change for deletes). It is only
	// valid during the callback: copy it to keep it.
	Image []byte
	// OriginPlatformID is the platform whose change the agent applied, 0 for a local write.
	OriginPlatformID int64
	// ChangedAtMS is when the change was written, in Unix milliseconds.
	ChangedAtMS int64
}

// Scan calls fn, in id order, for at most limit rows of model with after < id <= upto
// (limit < 0: no limit). It returns how many rows it scanned and the id of the last one.
// fn must not use the state database.
func (q *Queue) Scan(ctx context.Context, model string, after, upto int64, limit int,
	fn func(*Row) error) (n int, last int64, err error) {
	return q.ScanModels(ctx, []string{model}, after, upto, limit, fn)
}

// ScanModels is Scan over the rows of several models, merged in id order.
func (q *Queue) ScanModels(ctx context.Context, models []string, after, upto int64, limit int,
	fn func(*Row) error) (n int, last int64, err error) {
	if len(models) == 0 {
		return 0, 0, nil
	}
	var rows *sql.Rows
	if len(models) == 1 {
		rows, err = q.db.QueryContext(ctx, `SELECT id, model, op, row_image, origin_platform_id, changed_at FROM capture_queue
			WHERE model = ? AND id > ? AND id <= ? ORDER BY id LIMIT `+strconv.Itoa(limit), models[0], after, upto)
	} else {
		args := make([]any, 0, len(models)+3)
		for _, m := range models {
			args = append(args, m)
		}
		args = append(args, after, upto)
		rows, err = q.db.QueryContext(ctx, `SELECT id, model, op, row_image, origin_platform_id, changed_at FROM capture_queue
			WHERE model IN (?`+strings.Repeat(", ?", len(models)-1)+`) AND id > ? AND id <= ? ORDER BY id LIMIT `+strconv.Itoa(limit), args...)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("scan capture queue: %w", err)
	}
	defer rows.Close()
	var (
		r     Row
		model sql.RawBytes
		op    sql.RawBytes
		img   sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&r.ID, &model, &op, &img, &r.OriginPlatformID, &r.ChangedAtMS); err != nil {
			return n, last, fmt.Errorf("scan capture queue: %w", err)
		}
		r.Model = modelName(models, model)
		r.Op = opName(op)
		r.Image = img
		if err := fn(&r); err != nil {
			return n, last, err
		}
		n++
		last = r.ID
	}
	if err := rows.Err(); err != nil {
		return n, last, fmt.Errorf("scan capture queue: %w", err)
	}
	return n, last, nil
}

// modelName returns the model as one of the names asked for, without allocating.
func modelName(models []string, b []byte) string {
	for _, m := range models {
		if m == string(b) {
			return m
		}
	}
	return string(b)
}

// opName returns the op as one of the event type constants without allocating.
func opName(b []byte) string {
	switch string(b) {
	case "created":
		return "created"
	case "updated":
		return "updated"
	case "deleted":
		return "deleted"
	}
	return string(b)
}

// Pending counts the rows of model after the given id whose origin is not exceptOrigin,
// and returns when the oldest of them was written (zero when there is none).
func (q *Queue) Pending(ctx context.Context, model string, after, exceptOrigin int64) (int64, time.Time, error) {
	var (
		n      int64
		oldest sql.NullInt64
	)
	err := q.db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(changed_at) FROM capture_queue
		WHERE model = ? AND id > ? AND origin_platform_id <> ?`, model, after, exceptOrigin).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count pending queue rows: %w", err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, time.UnixMilli(oldest.Int64).UTC(), nil
}

// Purge deletes the rows with id <= upto, in chunks, except unconfirmed ones, and returns
// how many it deleted.
func (q *Queue) Purge(ctx context.Context, upto int64) (int64, error) {
	q.mu.Lock()
	if q.unconfirmed != 0 && upto >= q.unconfirmed {
		upto = q.unconfirmed - 1
	}
	q.mu.Unlock()
	if upto <= 0 {
		return 0, nil
	}
	var total int64
	for {
		var n int64
		err := inTx(ctx, q.db, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM capture_queue WHERE id IN
				(SELECT id FROM capture_queue WHERE id <= ? ORDER BY id LIMIT `+strconv.Itoa(purgeChunk)+`)`, upto)
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			_, err = tx.ExecContext(ctx, `INSERT INTO capture_meta (name, value) VALUES (?, ?)
				ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)`, metaPurged, upto)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("purge capture queue: %w", err)
		}
		total += n
		if n < purgeChunk {
			return total, nil
		}
	}
}

// PurgedUpTo returns the highest id purged so far: a reader whose cursor is below it may
// have missed rows.
func (q *Queue) PurgedUpTo(ctx context.Context) (int64, error) { return q.meta(ctx, metaPurged) }

// inTx runs fn in a transaction, committing when it returns nil.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// signal is a broadcast: wait returns a channel that the next broadcast closes. The zero
// value is ready to use.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) broadcast() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}
