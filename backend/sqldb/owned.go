package sqldb

// Row ownership: which rows of a target table a sync wrote. Reconciliation deletes a target
// row that the source no longer has only when the sync owns it, so rows the target platform
// created itself are never touched.

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// OwnedTable is the table in the application database that records, per sync and model, the
// key texts (KeyText) of the rows the sync wrote.
const OwnedTable = "mooxsync_owned"

// MaxOwnedKeyLen is the longest key (in bytes) MarkOwned records. A longer key is not
// recorded, so its row is never deleted by reconciliation (the safe side); every database
// indexes keys of this length.
const MaxOwnedKeyLen = 1024

// ownedChunks are the row counts of the multi-row statements MarkOwned uses, largest first.
var ownedChunks = []int{200, 20, 1}

// EnsureOwned creates mooxsync_owned if it is missing. It is idempotent; call it before the
// first MarkOwned (on MySQL DDL cannot run inside the apply transaction).
func (db *DB) EnsureOwned(ctx context.Context) error {
	var ddl string
	switch db.d.flavor() {
	case flavorSQLite:
		ddl = `CREATE TABLE IF NOT EXISTS "mooxsync_owned" (
			"sync_id" INTEGER NOT NULL,
			"model" TEXT NOT NULL,
			"key_value" TEXT NOT NULL,
			PRIMARY KEY ("sync_id", "model", "key_value")
		) WITHOUT ROWID`
	case flavorPostgres:
		ddl = `CREATE TABLE IF NOT EXISTS "mooxsync_owned" (
			"sync_id" BIGINT NOT NULL,
			"model" TEXT NOT NULL,
			"key_value" TEXT COLLATE "C" NOT NULL,
			PRIMARY KEY ("sync_id", "model", "key_value")
		)`
	default:
		// Binary strings: keys compare byte for byte, without trailing-space padding.
		ddl = "CREATE TABLE IF NOT EXISTS `mooxsync_owned` (" +
			"`sync_id` BIGINT NOT NULL," +
			"`model` VARBINARY(255) NOT NULL," +
			"`key_value` VARBINARY(1024) NOT NULL," +
			"PRIMARY KEY (`sync_id`, `model`, `key_value`)" +
			") ENGINE=InnoDB"
	}
	if err := db.execDDL(ctx, []string{ddl}); err != nil {
		return fmt.Errorf("ensure owned table: %w", err)
	}
	return nil
}

// MarkOwned records inside the Writer's transaction that sync syncID wrote the rows of model
// (the target table) with these key texts (KeyText of the key values). Keys recorded before
// are left alone; keys longer than MaxOwnedKeyLen are skipped. It writes in multi-row
// statements.
func (w *Writer) MarkOwned(ctx context.Context, syncID int64, model string, keys []string) error {
	keys = ownableKeys(keys)
	d := w.db.d
	for off := 0; off < len(keys); {
		n := 1
		for _, size := range ownedChunks {
			if size <= len(keys)-off {
				n = size
				break
			}
		}
		stmt, err := w.ownedStmt(ctx, ownedInsertSQL(d, n))
		if err != nil {
			return fmt.Errorf("mark rows owned: %w", err)
		}
		args := make([]any, 0, 3*n)
		for _, k := range keys[off : off+n] {
			args = append(args, syncID, model, k)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("mark rows owned: %w", err)
		}
		off += n
	}
	return nil
}

// Disown forgets, for every sync, the rows of model with these key texts: call it when the
// rows are deleted. A row the target creates again later under the same key is then the
// target's own.
func (w *Writer) Disown(ctx context.Context, model string, keys []string) error {
	d := w.db.d
	const chunk = 200
	for start := 0; start < len(keys); start += chunk {
		part := keys[start:min(start+chunk, len(keys))]
		q := "DELETE FROM " + d.QuoteIdent(OwnedTable) + " WHERE " + d.QuoteIdent("model") + " = " + d.Placeholder(1) +
			" AND " + d.QuoteIdent("key_value") + " IN (" + placeholders(d, 2, len(part)) + ")"
		args := make([]any, 0, len(part)+1)
		args = append(args, model)
		for _, k := range part {
			args = append(args, k)
		}
		if _, err := w.tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("disown rows: %w", err)
		}
	}
	return nil
}

// OwnedKeys returns, in byte order, the key texts of model's rows that sync syncID owns
// within r.
func (db *DB) OwnedKeys(ctx context.Context, syncID int64, model string, r KeyRange) ([]string, error) {
	d := db.d
	k := d.QuoteIdent("key_value")
	q := "SELECT " + k + " FROM " + d.QuoteIdent(OwnedTable) + " WHERE " + d.QuoteIdent("sync_id") + " = " +
		d.Placeholder(1) + " AND " + d.QuoteIdent("model") + " = " + d.Placeholder(2)
	args := []any{syncID, model}
	if r.Lo != "" {
		args = append(args, r.Lo)
		q += " AND " + k + " > " + d.Placeholder(len(args))
	}
	if r.Hi != "" {
		args = append(args, r.Hi)
		q += " AND " + k + " <= " + d.Placeholder(len(args))
	}
	keys, err := queryStrings(ctx, db.sql, q+" ORDER BY "+k, args...)
	if err != nil {
		return nil, fmt.Errorf("owned keys: %w", err)
	}
	slices.Sort(keys) // byte order, whatever the driver did
	return keys, nil
}

// OwnedAmong returns those of keys (key texts) whose rows of model sync syncID owns, in the
// order of keys.
func (db *DB) OwnedAmong(ctx context.Context, syncID int64, model string, keys []string) ([]string, error) {
	d := db.d
	owned := map[string]bool{}
	const chunk = 500
	for start := 0; start < len(keys); start += chunk {
		part := keys[start:min(start+chunk, len(keys))]
		q := "SELECT " + d.QuoteIdent("key_value") + " FROM " + d.QuoteIdent(OwnedTable) + " WHERE " +
			d.QuoteIdent("sync_id") + " = " + d.Placeholder(1) + " AND " + d.QuoteIdent("model") + " = " + d.Placeholder(2) +
			" AND " + d.QuoteIdent("key_value") + " IN (" + placeholders(d, 3, len(part)) + ")"
		args := make([]any, 0, len(part)+2)
		args = append(args, syncID, model)
		for _, k := range part {
			args = append(args, k)
		}
		found, err := queryStrings(ctx, db.sql, q, args...)
		if err != nil {
			return nil, fmt.Errorf("owned keys: %w", err)
		}
		for _, k := range found {
			owned[k] = true
		}
	}
	out := make([]string, 0, len(owned))
	for _, k := range keys {
		if owned[k] {
			out = append(out, k)
			delete(owned, k) // once, even if asked twice
		}
	}
	return out, nil
}

// ownableKeys drops keys too long to record, and duplicates (a multi-row insert must not
// name a key twice).
func ownableKeys(keys []string) []string {
	out := make([]string, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if len(k) > MaxOwnedKeyLen || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, k)
	}
	return out
}

// ownedInsertSQL inserts n (sync_id, model, key_value) rows, leaving existing ones alone.
func ownedInsertSQL(d dialect, n int) string {
	var b strings.Builder
	if d.flavor() == flavorMySQL {
		b.WriteString("INSERT INTO `mooxsync_owned` (`sync_id`, `model`, `key_value`) VALUES ")
	} else {
		b.WriteString(`INSERT INTO "mooxsync_owned" ("sync_id", "model", "key_value") VALUES `)
	}
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + placeholders(d, 3*r+1, 3) + ")")
	}
	if d.flavor() == flavorMySQL {
		b.WriteString(" ON DUPLICATE KEY UPDATE `sync_id` = `sync_id`")
	} else {
		b.WriteString(" ON CONFLICT DO NOTHING")
	}
	return b.String()
}

// ownedStmt returns the statement q prepared for this transaction: shared through the DB's
// statement cache, and kept for the Writer's later calls.
func (w *Writer) ownedStmt(ctx context.Context, q string) (*sql.Stmt, error) {
	sig := "\xf0owned " + q // op bytes of writer.go are small numbers: no clash
	if p, ok := w.stmts[sig]; ok {
		return p.stmt, nil
	}
	var stmt *sql.Stmt
	if shared, err := w.db.cachedStmt(ctx, q); err == nil && shared != nil {
		stmt = w.tx.StmtContext(ctx, shared)
	} else if stmt, err = w.tx.PrepareContext(ctx, q); err != nil {
		return nil, err
	}
	w.stmts[sig] = prepared{stmt: stmt}
	return stmt, nil
}

// placeholders writes n placeholders numbered from first, comma-separated.
func placeholders(d Dialect, first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.Placeholder(first + i))
	}
	return b.String()
}
