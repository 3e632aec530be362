package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// NotifyChannel is the PostgreSQL channel the capture triggers notify after every change,
// so that a reader can LISTEN instead of polling.
const NotifyChannel = "mooxsync_changes"

// originSetting is the transaction-local setting that carries the origin marker.
const originSetting = "mooxsync.origin"

func openPostgres(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return stdlib.OpenDB(*cfg), nil
}

// postgresDialect is PostgreSQL 11 or newer.
type postgresDialect struct{}

func (postgresDialect) Name() string                  { return "postgres" }
func (postgresDialect) QuoteIdent(name string) string { return quoteWith('"', name) }
func (postgresDialect) Placeholder(n int) string      { return dollar(n) }
func (postgresDialect) flavor() flavor                { return flavorPostgres }
func (postgresDialect) ddlInTx() bool                 { return true }

func (postgresDialect) currentSchema(ctx context.Context, q querier) (string, error) {
	var s sql.NullString
	if err := q.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&s); err != nil {
		return "", err
	}
	if !s.Valid {
		return "", errors.New("no schema of the search_path exists")
	}
	return s.String, nil
}

const pgColumnsSQL = `SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relname NOT LIKE 'mooxsync\_%' AND ($1::text = '' OR c.relname::text = $1::text)
ORDER BY c.relname, a.attnum`

// pgIndexesSQL lists the key columns of unique, valid, immediate, non-partial, non-expression
// indexes: the ones ON CONFLICT can name.
const pgIndexesSQL = `SELECT c.relname, ic.relname, i.indisprimary, a.attname
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE n.nspname = current_schema() AND i.indisunique AND i.indisvalid AND i.indimmediate
  AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts
  AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE 'mooxsync\_%' AND ($1::text = '' OR c.relname::text = $1::text)
ORDER BY c.relname, ic.relname, k.ord`

func (postgresDialect) loadTables(ctx context.Context, q querier, only string) ([]*table, error) {
	rows, err := q.QueryContext(ctx, pgColumnsSQL, only)
	if err != nil {
		return nil, err
	}
	var (
		tables []*table
		byName = map[string]*table{}
	)
	for rows.Next() {
		var tn string
		var col protocol.Column
		if err := rows.Scan(&tn, &col.Name, &col.Type, &col.Nullable); err != nil {
			rows.Close()
			return nil, err
		}
		t := byName[tn]
		if t == nil {
			t = newTable(tn)
			byName[tn] = t
			tables = append(tables, t)
		}
		t.addColumn(col, postgresKind(col.Type))
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	if err := loadIndexes(ctx, q, pgIndexesSQL, byName, only); err != nil {
		return nil, err
	}
	for _, t := range tables {
		t.finish()
	}
	return tables, nil
}

// loadIndexes reads rows of (table, index, is primary, column) in index column order and
// files them as the tables' primary keys and unique sets. An index with a NULL column (an
// expression) is left out.
func loadIndexes(ctx context.Context, q querier, query string, byName map[string]*table, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	type idx struct {
		t    *table
		pk   bool
		cols []string
		expr bool
	}
	var (
		all  []*idx
		seen = map[[2]string]*idx{}
	)
	for rows.Next() {
		var tn, name string
		var pk bool
		var col sql.NullString
		if err := rows.Scan(&tn, &name, &pk, &col); err != nil {
			rows.Close()
			return err
		}
		t := byName[tn]
		if t == nil {
			continue
		}
		ix := seen[[2]string{tn, name}]
		if ix == nil {
			ix = &idx{t: t, pk: pk}
			seen[[2]string{tn, name}] = ix
			all = append(all, ix)
		}
		ix.expr = ix.expr || !col.Valid
		ix.cols = append(ix.cols, col.String)
	}
	if err := closeRows(rows); err != nil {
		return err
	}
	for _, ix := range all {
		switch {
		case ix.expr:
		case ix.pk:
			ix.t.pk = ix.cols
		default:
			ix.t.unique = append(ix.t.unique, ix.cols)
		}
	}
	return nil
}

func (d postgresDialect) captureFunc(schema string) string {
	return d.QuoteIdent(schema) + "." + d.QuoteIdent(triggerPrefix+triggerVersion+"_capture")
}

func (d postgresDialect) outboxDDL(schema string) []string {
	outbox := d.QuoteIdent(schema) + `."mooxsync_changes"`
	origin := `NULLIF(current_setting('` + originSetting + `', true), '')::bigint`
	return []string{
		`CREATE TABLE IF NOT EXISTS "mooxsync_changes" (
			"seq" BIGSERIAL PRIMARY KEY,
			"model" TEXT NOT NULL,
			"op" TEXT NOT NULL,
			"row_image" TEXT NOT NULL,
			"origin_platform_id" BIGINT,
			"changed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT clock_timestamp()
		)`,
		`CREATE OR REPLACE FUNCTION ` + d.captureFunc(schema) + `() RETURNS trigger LANGUAGE plpgsql AS $mooxsync$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO ` + outbox + ` ("model", "op", "row_image", "origin_platform_id")
		VALUES (TG_TABLE_NAME, 'deleted', row_to_json(OLD)::text, ` + origin + `);
	ELSE
		INSERT INTO ` + outbox + ` ("model", "op", "row_image", "origin_platform_id")
		VALUES (TG_TABLE_NAME, CASE TG_OP WHEN 'INSERT' THEN 'created' ELSE 'updated' END, row_to_json(NEW)::text, ` + origin + `);
	END IF;
	PERFORM pg_notify('` + NotifyChannel + `', '');
	RETURN NULL;
END
$mooxsync$`,
	}
}

func (postgresDialect) appliedDDL() []string {
	return []string{`CREATE TABLE IF NOT EXISTS "mooxsync_applied" (
		"sync_id" BIGINT NOT NULL,
		"batch_id" TEXT NOT NULL,
		"applied_at" TIMESTAMPTZ(3) NOT NULL,
		PRIMARY KEY ("sync_id", "batch_id")
	)`}
}

func (postgresDialect) markAppliedSQL() string {
	return `INSERT INTO "mooxsync_applied" ("sync_id", "batch_id", "applied_at") VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
}

// setOrigin sets a transaction-local setting; it ends with the transaction by itself.
func (postgresDialect) setOrigin(ctx context.Context, q querier, platformID int64) error {
	v := ""
	if platformID != 0 {
		v = strconv.FormatInt(platformID, 10)
	}
	_, err := q.ExecContext(ctx, `SELECT set_config('`+originSetting+`', $1, true)`, v)
	return err
}

func (postgresDialect) maxParams() int { return 65535 }

func (d postgresDialect) upsertClause(t *table, key *column, cols []*column) (string, bool) {
	if !t.uniqueOn(key.Name) {
		return "", false
	}
	var old, excl []string
	comparable := true
	tn := d.QuoteIdent(t.name)
	for _, c := range cols {
		if c == key {
			continue
		}
		q := d.QuoteIdent(c.Name)
		cast := ""
		switch {
		case c.kind == kindOther:
			comparable = false
		case c.kind == kindJSON && strings.EqualFold(c.Type, "json"):
			cast = "::text" // json has no equality operator
		}
		old = append(old, tn+"."+q+cast)
		excl = append(excl, "EXCLUDED."+q+cast)
	}
	target := "ON CONFLICT (" + d.QuoteIdent(key.Name) + ") DO "
	if len(old) == 0 {
		return target + "NOTHING RETURNING true", true
	}
	clause := target + "UPDATE SET " + setExcluded(d, key, cols, func(q string) string { return "EXCLUDED." + q })
	if comparable {
		// Leave a row with the same values alone: no dead tuple, no trigger, no outbox row.
		clause += " WHERE (" + strings.Join(old, ", ") + ") IS DISTINCT FROM (" + strings.Join(excl, ", ") + ")"
	}
	return clause + " RETURNING (xmax = 0)", true
}

func (d postgresDialect) ignoreClause(t *table, key *column) string {
	if !t.uniqueOn(key.Name) {
		return ""
	}
	return "ON CONFLICT (" + d.QuoteIdent(key.Name) + ") DO NOTHING"
}

func (d postgresDialect) triggerSQL(schema string, t *table, names triggerNames) ([]string, error) {
	tn := d.QuoteIdent(schema) + "." + d.QuoteIdent(t.name)
	fn := " FOR EACH ROW EXECUTE FUNCTION " + d.captureFunc(schema) + "()"
	return []string{
		"CREATE TRIGGER " + d.QuoteIdent(names.ins) + " AFTER INSERT ON " + tn + fn,
		// *<> compares the rows' binary images: it works for every type (json has no =).
		"CREATE TRIGGER " + d.QuoteIdent(names.upd) + " AFTER UPDATE ON " + tn + " FOR EACH ROW WHEN (OLD *<> NEW) EXECUTE FUNCTION " + d.captureFunc(schema) + "()",
		"CREATE TRIGGER " + d.QuoteIdent(names.del) + " AFTER DELETE ON " + tn + fn,
	}, nil
}

const pgTriggersSQL = `SELECT c.relname, t.tgname FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND NOT t.tgisinternal AND t.tgname LIKE 'mooxsync\_%'`

func (postgresDialect) triggersOn(ctx context.Context, q querier, tableName string) ([]string, error) {
	return queryStrings(ctx, q, `SELECT tgname FROM (`+pgTriggersSQL+`) x WHERE relname = $1 ORDER BY tgname`, tableName)
}

func (postgresDialect) triggerTables(ctx context.Context, q querier) ([]string, error) {
	return queryStrings(ctx, q, `SELECT DISTINCT relname::text FROM (`+pgTriggersSQL+`) x ORDER BY 1`)
}

func (d postgresDialect) dropTriggerSQL(tableName, trigger string) string {
	return "DROP TRIGGER IF EXISTS " + d.QuoteIdent(trigger) + " ON " + d.QuoteIdent(tableName)
}
