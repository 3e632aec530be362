package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/mooxsync/mooxsync/backend/protocol"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3"
)

// sqliteDefaults are the connection settings every SQLite connection gets unless the DSN
// sets them: WAL so readers never block the writer, a generous busy timeout, foreign keys
// enforced, and BEGIN IMMEDIATE so a transaction holds the write lock from its start.
var sqliteDefaults = map[string]string{
	"_journal_mode": "WAL",
	"_busy_timeout": "10000",
	"_foreign_keys": "on",
	"_synchronous":  "NORMAL",
	"_txlock":       "immediate",
}

func openSQLite(rest string) (*sql.DB, error) {
	path, query, _ := strings.Cut(strings.TrimPrefix(rest, "//"), "?")
	if path == "" {
		return nil, errors.New("sqlite dsn has no file path")
	}
	if path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, errors.New("sqlite dsn must name a file path (in-memory databases are not supported)")
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("sqlite dsn parameters: %w", err)
	}
	for k, v := range sqliteDefaults {
		if !params.Has(k) {
			params.Set(k, v)
		}
	}
	return sql.Open("sqlite3", path+"?"+params.Encode())
}

// sqliteDialect is SQLite 3.35 or newer (RETURNING, UPSERT, json_object).
type sqliteDialect struct{}

func (sqliteDialect) Name() string                  { return "sqlite" }
func (sqliteDialect) QuoteIdent(name string) string { return quoteWith('"', name) }
func (sqliteDialect) Placeholder(n int) string      { return questionMark(n) }
func (sqliteDialect) flavor() flavor                { return flavorSQLite }
func (sqliteDialect) ddlInTx() bool                 { return true }

func (sqliteDialect) currentSchema(context.Context, querier) (string, error) { return "main", nil }

func (sqliteDialect) loadTables(ctx context.Context, q querier, only string) ([]*table, error) {
	query := `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE 'mooxsync\_%' ESCAPE '\'`
	var args []any
	if only != "" {
		query += ` AND name = ?`
		args = append(args, only)
	}
	names, err := queryStrings(ctx, q, query+` ORDER BY name`, args...)
	if err != nil {
		return nil, err
	}
	tables := make([]*table, 0, len(names))
	for _, name := range names {
		t, err := sqliteTable(ctx, q, name)
		if err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	return tables, nil
}

func sqliteTable(ctx context.Context, q querier, name string) (*table, error) {
	t := newTable(name)
	rows, err := q.QueryContext(ctx, `SELECT name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid`, name)
	if err != nil {
		return nil, err
	}
	type pkCol struct {
		name string
		pos  int
	}
	var pks []pkCol
	for rows.Next() {
		var (
			col     protocol.Column
			notNull bool
			pk      int
		)
		if err := rows.Scan(&col.Name, &col.Type, &notNull, &pk); err != nil {
			rows.Close()
			return nil, err
		}
		// An INTEGER PRIMARY KEY is the rowid and never NULL, though the pragma says otherwise.
		col.Nullable = !notNull && !(pk > 0 && strings.EqualFold(col.Type, "INTEGER"))
		if pk > 0 {
			pks = append(pks, pkCol{col.Name, pk})
		}
		t.addColumn(col, sqliteKind(col.Type))
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	t.pk = make([]string, len(pks))
	for _, p := range pks {
		t.pk[p.pos-1] = p.name
	}

	type index struct {
		name string
		pk   bool
	}
	var idxs []index
	rows, err = q.QueryContext(ctx, `SELECT name, origin FROM pragma_index_list(?) WHERE "unique" = 1 AND partial = 0`, name)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var ix index
		var origin string
		if err := rows.Scan(&ix.name, &origin); err != nil {
			rows.Close()
			return nil, err
		}
		ix.pk = origin == "pk"
		idxs = append(idxs, ix)
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	for _, ix := range idxs {
		if ix.pk {
			continue
		}
		rows, err := q.QueryContext(ctx, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, ix.name)
		if err != nil {
			return nil, err
		}
		var cols []string
		expr := false
		for rows.Next() {
			var c sql.NullString
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return nil, err
			}
			if !c.Valid {
				expr = true // an expression index cannot be named as a conflict target
			}
			cols = append(cols, c.String)
		}
		if err := closeRows(rows); err != nil {
			return nil, err
		}
		if !expr && len(cols) > 0 {
			t.unique = append(t.unique, cols)
		}
	}
	t.finish()
	return t, nil
}

func (sqliteDialect) outboxDDL(string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS "mooxsync_changes" (
			"seq" INTEGER PRIMARY KEY AUTOINCREMENT,
			"model" TEXT NOT NULL,
			"op" TEXT NOT NULL,
			"row_image" TEXT NOT NULL,
			"origin_platform_id" INTEGER,
			"changed_at" TEXT NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS "mooxsync_origin" (
			"id" INTEGER PRIMARY KEY CHECK ("id" = 1),
			"platform_id" INTEGER
		)`,
		`INSERT OR IGNORE INTO "mooxsync_origin" ("id", "platform_id") VALUES (1, NULL)`,
	}
}

func (sqliteDialect) appliedDDL() []string {
	return []string{`CREATE TABLE IF NOT EXISTS "mooxsync_applied" (
		"sync_id" INTEGER NOT NULL,
		"batch_id" TEXT NOT NULL,
		"applied_at" TEXT NOT NULL,
		PRIMARY KEY ("sync_id", "batch_id")
	)`}
}

func (sqliteDialect) markAppliedSQL() string {
	return `INSERT INTO "mooxsync_applied" ("sync_id", "batch_id", "applied_at") VALUES (?, ?, ?) ON CONFLICT DO NOTHING`
}

// setOrigin writes the marker into the one-row table the triggers read. The transaction
// holds SQLite's write lock, so no other writer can see the marker before it is reset.
func (sqliteDialect) setOrigin(ctx context.Context, q querier, platformID int64) error {
	_, err := q.ExecContext(ctx, `UPDATE "mooxsync_origin" SET "platform_id" = ? WHERE "id" = 1`, nullID(platformID))
	return err
}

func (sqliteDialect) maxParams() int { return 32766 }

func (d sqliteDialect) upsertClause(t *table, key *column, cols []*column) (string, bool) {
	if !t.uniqueOn(key.Name) {
		return "", false
	}
	target := "ON CONFLICT (" + d.QuoteIdent(key.Name) + ") DO "
	set := setExcluded(d, key, cols, func(q string) string { return "excluded." + q })
	if set == "" {
		return target + "NOTHING", false
	}
	return target + "UPDATE SET " + set, false
}

func (d sqliteDialect) ignoreClause(t *table, key *column) string {
	if !t.uniqueOn(key.Name) {
		return ""
	}
	return "ON CONFLICT (" + d.QuoteIdent(key.Name) + ") DO NOTHING"
}

// sqliteJSONChunk is the number of key/value pairs per json_object call, well under
// SQLITE_MAX_FUNCTION_ARG in any build.
const sqliteJSONChunk = 60

// rowImage builds the JSON object of a row as a SQL expression over ref ("NEW" or "OLD").
// Blob values become hex so that json_object never fails (a failing trigger would fail the
// application's own write).
func (d sqliteDialect) rowImage(t *table, ref string) (string, error) {
	var expr string
	for start := 0; start < len(t.cols); start += sqliteJSONChunk {
		end := min(start+sqliteJSONChunk, len(t.cols))
		var b strings.Builder
		if start == 0 {
			b.WriteString("json_object(")
		} else {
			b.WriteString("json_set(" + expr + ", ")
		}
		for i, c := range t.cols[start:end] {
			if i > 0 {
				b.WriteString(", ")
			}
			if start == 0 {
				b.WriteString(quoteString(c.Name))
			} else {
				if strings.ContainsAny(c.Name, `"\`) {
					return "", fmt.Errorf("column %q of a table with more than %d columns cannot be captured", c.Name, sqliteJSONChunk)
				}
				b.WriteString(quoteString(`$."` + c.Name + `"`))
			}
			v := ref + "." + d.QuoteIdent(c.Name)
			b.WriteString(", CASE WHEN typeof(" + v + ") = 'blob' THEN hex(" + v + ") ELSE " + v + " END")
		}
		b.WriteString(")")
		expr = b.String()
	}
	if expr == "" {
		expr = "json_object()"
	}
	return expr, nil
}

func (d sqliteDialect) triggerSQL(_ string, t *table, names triggerNames) ([]string, error) {
	newImg, err := d.rowImage(t, "NEW")
	if err != nil {
		return nil, err
	}
	oldImg, err := d.rowImage(t, "OLD")
	if err != nil {
		return nil, err
	}
	insert := func(op, img string) string {
		return `INSERT INTO "mooxsync_changes" ("model", "op", "row_image", "origin_platform_id", "changed_at") VALUES (` +
			quoteString(t.name) + `, ` + quoteString(op) + `, ` + img +
			`, (SELECT "platform_id" FROM "mooxsync_origin" WHERE "id" = 1), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));`
	}
	var changed []string
	for _, c := range t.cols {
		// Compare bytes: a NOCASE column must not hide a change of case.
		changed = append(changed, "OLD."+d.QuoteIdent(c.Name)+" IS NOT NEW."+d.QuoteIdent(c.Name)+" COLLATE BINARY")
	}
	when := ""
	if len(changed) > 0 {
		when = " WHEN " + strings.Join(changed, " OR ")
	}
	tn := d.QuoteIdent(t.name)
	return []string{
		`CREATE TRIGGER ` + d.QuoteIdent(names.ins) + ` AFTER INSERT ON ` + tn + ` FOR EACH ROW BEGIN ` +
			insert(protocol.EventCreated, newImg) + ` END`,
		`CREATE TRIGGER ` + d.QuoteIdent(names.upd) + ` AFTER UPDATE ON ` + tn + ` FOR EACH ROW` + when + ` BEGIN ` +
			insert(protocol.EventUpdated, newImg) + ` END`,
		`CREATE TRIGGER ` + d.QuoteIdent(names.del) + ` AFTER DELETE ON ` + tn + ` FOR EACH ROW BEGIN ` +
			insert(protocol.EventDeleted, oldImg) + ` END`,
	}, nil
}

func (sqliteDialect) triggersOn(ctx context.Context, q querier, tableName string) ([]string, error) {
	return queryStrings(ctx, q, `SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?
		AND name LIKE 'mooxsync\_%' ESCAPE '\' ORDER BY name`, tableName)
}

func (sqliteDialect) triggerTables(ctx context.Context, q querier) ([]string, error) {
	return queryStrings(ctx, q, `SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger'
		AND name LIKE 'mooxsync\_%' ESCAPE '\' ORDER BY tbl_name`)
}

func (d sqliteDialect) dropTriggerSQL(_, trigger string) string {
	return "DROP TRIGGER IF EXISTS " + d.QuoteIdent(trigger)
}

// queryStrings runs a query returning one string column.
func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, s)
	}
	return out, closeRows(rows)
}

func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// nullID maps the platform id 0 ("none") to NULL.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}
