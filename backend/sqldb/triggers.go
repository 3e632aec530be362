package sqldb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Trigger names are mooxsync_<version>_<table>_<op>_<hash>. The version changes when the
// shape of what triggers write changes; the hash is taken over the trigger definitions, so
// a table whose columns changed gets new triggers on the next InstallTriggers while an
// unchanged one is left alone. New triggers are created before old ones are dropped: on
// MySQL, where DDL cannot run in a transaction, a change may then be captured twice during
// the swap, but never lost.
const (
	triggerPrefix  = "mooxsync_"
	triggerVersion = "v1"
	// maxTriggerBase keeps names within PostgreSQL's 63 and MySQL's 64 characters.
	maxTriggerBase = 30
)

type triggerNames struct{ ins, upd, del string }

func (n triggerNames) all() []string { return []string{n.ins, n.upd, n.del} }

func isOurTrigger(name string) bool { return strings.HasPrefix(name, triggerPrefix) }

// triggerBase is the table part of a trigger name: the table name when it is short and
// plain, else a cleaned prefix and a hash of the full name.
func triggerBase(tableName string) string {
	clean := strings.Map(func(r rune) rune {
		if r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return -1
	}, tableName)
	if clean == tableName && len(clean) <= maxTriggerBase {
		return clean
	}
	sum := sha256.Sum256([]byte(tableName))
	if len(clean) > maxTriggerBase-9 {
		clean = clean[:maxTriggerBase-9]
	}
	return clean + "_" + hex.EncodeToString(sum[:4])
}

// triggersFor returns the names and statements of the current triggers for t.
func (db *DB) triggersFor(t *table) (triggerNames, []string, error) {
	stmts, err := db.d.triggerSQL(db.schema, t, triggerNames{ins: "ins", upd: "upd", del: "del"})
	if err != nil {
		return triggerNames{}, nil, err
	}
	sum := sha256.Sum256([]byte(triggerVersion + "\x00" + strings.Join(stmts, "\x00")))
	h := hex.EncodeToString(sum[:4])
	base := triggerPrefix + triggerVersion + "_" + triggerBase(t.name) + "_"
	names := triggerNames{ins: base + "ins_" + h, upd: base + "upd_" + h, del: base + "del_" + h}
	stmts, err = db.d.triggerSQL(db.schema, t, names)
	return names, stmts, err
}

// InstallTriggers makes the capture triggers of a table current: it ensures the outbox,
// introspects the table afresh, creates the triggers of this version and drops any other
// mooxsync trigger on the table. It is idempotent. A table that does not exist is a
// CodeUnknownModel error.
func (db *DB) InstallTriggers(ctx context.Context, tableName string) error {
	t, err := db.reload(ctx, db.sql, tableName)
	if err != nil {
		return err
	}
	if err := db.EnsureOutbox(ctx); err != nil {
		return err
	}
	names, stmts, err := db.triggersFor(t)
	if err != nil {
		return fmt.Errorf("install triggers on %q: %w", tableName, err)
	}
	existing, err := db.d.triggersOn(ctx, db.sql, t.name)
	if err != nil {
		return fmt.Errorf("install triggers on %q: %w", tableName, err)
	}
	var ddl []string
	for i, name := range names.all() {
		if !slices.Contains(existing, name) {
			ddl = append(ddl, stmts[i])
		}
	}
	for _, name := range existing {
		if !slices.Contains(names.all(), name) {
			ddl = append(ddl, db.d.dropTriggerSQL(t.name, name))
		}
	}
	if err := db.execDDL(ctx, ddl); err != nil {
		return fmt.Errorf("install triggers on %q: %w", tableName, err)
	}
	return nil
}

// RemoveTriggers drops every mooxsync trigger on a table. A missing table has none.
func (db *DB) RemoveTriggers(ctx context.Context, tableName string) error {
	existing, err := db.d.triggersOn(ctx, db.sql, tableName)
	if err != nil {
		return fmt.Errorf("remove triggers from %q: %w", tableName, err)
	}
	ddl := make([]string, 0, len(existing))
	for _, name := range existing {
		ddl = append(ddl, db.d.dropTriggerSQL(tableName, name))
	}
	if err := db.execDDL(ctx, ddl); err != nil {
		return fmt.Errorf("remove triggers from %q: %w", tableName, err)
	}
	return nil
}

// InstalledTriggers lists the tables that carry mooxsync triggers, sorted.
func (db *DB) InstalledTriggers(ctx context.Context) ([]string, error) {
	tables, err := db.d.triggerTables(ctx, db.sql)
	if err != nil {
		return nil, fmt.Errorf("list triggers: %w", err)
	}
	slices.Sort(tables)
	return slices.Compact(tables), nil
}

// execDDL runs statements in one transaction where the dialect allows it, else one by one.
func (db *DB) execDDL(ctx context.Context, stmts []string) error {
	if len(stmts) == 0 {
		return nil
	}
	if !db.d.ddlInTx() {
		for _, s := range stmts {
			if _, err := db.sql.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return tx.Commit()
}
