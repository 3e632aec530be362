package sqldb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// OutboxTable is the name of the outbox the capture triggers write to.
const OutboxTable = "mooxsync_changes"

// OutboxRow is one captured change read from the outbox.
type OutboxRow struct {
	Seq   int64
	Model string // table name
	Op    string // protocol.EventCreated, EventUpdated or EventDeleted
	// Row is the full row image (after the change; before it for deletes), with values in
	// canonical form (see the package comment), normalised by the table's current schema.
	Row map[string]any
	// OriginPlatformID is the platform whose change the agent applied, 0 for a local write.
	OriginPlatformID int64
	ChangedAt        time.Time // UTC, millisecond precision
}

// EnsureOutbox creates the outbox (and, for SQLite, the origin marker table; for
// PostgreSQL, the capture function) if they are missing. It is idempotent.
func (db *DB) EnsureOutbox(ctx context.Context) error {
	if err := db.execDDL(ctx, db.d.outboxDDL(db.schema)); err != nil {
		return fmt.Errorf("ensure outbox: %w", err)
	}
	return nil
}

// EnsureApplied creates the table mooxsync_applied that records the batches applied to
// this database, if it is missing.
func (db *DB) EnsureApplied(ctx context.Context) error {
	if err := db.execDDL(ctx, db.d.appliedDDL()); err != nil {
		return fmt.Errorf("ensure applied table: %w", err)
	}
	return nil
}

// ReadChanges returns up to limit outbox rows with seq > afterSeq, in seq order.
//
// On PostgreSQL and MySQL, concurrent application transactions commit in an order that
// may differ from seq order, so a row with a lower seq can become visible after a higher
// one was read. A reader must not treat a gap below its highest seen seq as final at once
// (sequences also skip values of rolled-back transactions); SQLite has a single writer and
// no such gaps.
func (db *DB) ReadChanges(ctx context.Context, afterSeq int64, limit int) ([]OutboxRow, error) {
	if limit <= 0 {
		limit = 1000
	}
	d := db.d
	q := "SELECT " + d.QuoteIdent("seq") + ", " + d.QuoteIdent("model") + ", " + d.QuoteIdent("op") + ", " +
		d.QuoteIdent("row_image") + ", " + d.QuoteIdent("origin_platform_id") + ", " + d.QuoteIdent("changed_at") +
		" FROM " + d.QuoteIdent(OutboxTable) + " WHERE " + d.QuoteIdent("seq") + " > " + d.Placeholder(1) +
		" ORDER BY " + d.QuoteIdent("seq") + " LIMIT " + d.Placeholder(2)
	rows, err := db.sql.QueryContext(ctx, q, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	defer rows.Close()
	tables := map[string]*table{}
	refreshed := map[string]bool{}
	var out []OutboxRow
	for rows.Next() {
		var (
			r       OutboxRow
			img     sql.RawBytes
			origin  sql.NullInt64
			changed any
		)
		if err := rows.Scan(&r.Seq, &r.Model, &r.Op, &img, &origin, &changed); err != nil {
			return nil, fmt.Errorf("read changes: %w", err)
		}
		r.OriginPlatformID = origin.Int64
		r.ChangedAt = changedAt(changed)
		t, ok := tables[r.Model]
		if !ok {
			t, _ = db.table(ctx, db.sql, r.Model) // a dropped table leaves values as stored
			tables[r.Model] = t
		}
		var complete bool
		if r.Row, complete, err = decodeImage(t, img); err != nil {
			return nil, fmt.Errorf("read changes: seq %d: %w", r.Seq, err)
		}
		if !complete && !refreshed[r.Model] {
			// A column the cached schema does not know: it was added since. Read it once more.
			refreshed[r.Model] = true
			if fresh, err := db.reload(ctx, db.sql, r.Model); err == nil {
				tables[r.Model] = fresh
				if r.Row, _, err = decodeImage(fresh, img); err != nil {
					return nil, fmt.Errorf("read changes: seq %d: %w", r.Seq, err)
				}
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	return out, nil
}

func changedAt(v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case string:
		t, _ := ParseDatetime(x)
		return t
	case []byte:
		t, _ := ParseDatetime(string(x))
		return t
	}
	return time.Time{}
}

// decodeImage decodes a trigger's JSON row image and normalises its values by t (nil: as
// stored). complete is false when t does not know one of the image's columns.
func decodeImage(t *table, img []byte) (row map[string]any, complete bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(img))
	dec.UseNumber()
	if err := dec.Decode(&row); err != nil {
		return nil, false, fmt.Errorf("row image: %w", err)
	}
	complete = t != nil
	for k, v := range row {
		var c *column
		if t != nil {
			c = t.byName[k]
			complete = complete && c != nil
		}
		row[k] = normalize(c, v, fromImage)
	}
	return row, complete, nil
}

// PurgeChanges deletes the outbox rows with seq <= uptoSeq.
func (db *DB) PurgeChanges(ctx context.Context, uptoSeq int64) error {
	q := `DELETE FROM ` + db.d.QuoteIdent(OutboxTable) + ` WHERE ` + db.d.QuoteIdent("seq") + ` <= ` + db.d.Placeholder(1)
	if _, err := db.sql.ExecContext(ctx, q, uptoSeq); err != nil {
		return fmt.Errorf("purge changes: %w", err)
	}
	return nil
}

// PurgeApplied deletes the records of batches applied before t.
func (db *DB) PurgeApplied(ctx context.Context, before time.Time) error {
	k := kindDatetime
	if db.d.flavor() == flavorPostgres {
		k = kindDatetimeTZ
	}
	q := `DELETE FROM ` + db.d.QuoteIdent("mooxsync_applied") + ` WHERE ` + db.d.QuoteIdent("applied_at") + ` < ` + db.d.Placeholder(1)
	if _, err := db.sql.ExecContext(ctx, q, formatForDB(db.d.flavor(), k, before.UTC())); err != nil {
		return fmt.Errorf("purge applied: %w", err)
	}
	return nil
}

// SetOrigin marks the writes that follow in tx as coming from platformID (0 clears the
// mark), so that the capture triggers record that origin instead of a local write. On
// SQLite and MySQL the mark outlives the statement: clear it before tx ends (Writer does).
// SQLite needs EnsureOutbox first.
func (db *DB) SetOrigin(ctx context.Context, tx *sql.Tx, platformID int64) error {
	if err := db.d.setOrigin(ctx, tx, platformID); err != nil {
		return fmt.Errorf("set origin: %w", err)
	}
	return nil
}
