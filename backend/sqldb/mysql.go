package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// openMySQL opens a pool whose sessions run in UTC (so TIMESTAMP columns read and write
// UTC), parse DATETIME into time.Time, and use server-side prepared statements.
func openMySQL(ctx context.Context, dsn string) (*sql.DB, mysqlDialect, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, mysqlDialect{}, err
	}
	if cfg.DBName == "" {
		return nil, mysqlDialect{}, errors.New("mysql dsn names no database")
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = false
	cfg.ClientFoundRows = false // upserts tell 0 (unchanged), 1 (inserted), 2 (updated) apart
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, mysqlDialect{}, err
	}
	sdb := sql.OpenDB(conn)
	var d mysqlDialect
	var version, mode string
	if err := sdb.QueryRowContext(ctx, `SELECT VERSION(), @@SESSION.sql_mode`).Scan(&version, &mode); err != nil {
		sdb.Close()
		return nil, mysqlDialect{}, err
	}
	d.maria = strings.Contains(strings.ToLower(version), "mariadb")
	d.noBackslashEscapes = strings.Contains(strings.ToUpper(mode), "NO_BACKSLASH_ESCAPES")
	return sdb, d, nil
}

// mysqlDialect is MySQL 5.7+ or MariaDB 10.3+.
type mysqlDialect struct {
	maria              bool
	noBackslashEscapes bool
}

func (mysqlDialect) Name() string                  { return "mysql" }
func (mysqlDialect) QuoteIdent(name string) string { return quoteWith('`', name) }
func (mysqlDialect) Placeholder(n int) string      { return questionMark(n) }
func (mysqlDialect) flavor() flavor                { return flavorMySQL }
func (mysqlDialect) ddlInTx() bool                 { return false }

// quoteString renders a string literal as the session that creates a trigger parses it.
func (d mysqlDialect) quoteString(s string) string {
	if !d.noBackslashEscapes {
		s = strings.ReplaceAll(s, `\`, `\\`)
	}
	return quoteString(s)
}

func (mysqlDialect) currentSchema(ctx context.Context, q querier) (string, error) {
	var s sql.NullString
	if err := q.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&s); err != nil {
		return "", err
	}
	if !s.Valid {
		return "", errors.New("no database selected")
	}
	return s.String, nil
}

const myColumnsSQL = `SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.DATA_TYPE, c.IS_NULLABLE = 'YES'
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' AND (? = '' OR c.TABLE_NAME = ?)
ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION`

const myIndexesSQL = `SELECT TABLE_NAME, INDEX_NAME, INDEX_NAME = 'PRIMARY', COLUMN_NAME
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = DATABASE() AND NON_UNIQUE = 0 AND (? = '' OR TABLE_NAME = ?)
ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`

// myJSONChecksSQL finds MariaDB's JSON columns, which are LONGTEXT with a json_valid check.
const myJSONChecksSQL = `SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = DATABASE() AND CHECK_CLAUSE LIKE 'json_valid(%' AND (? = '' OR TABLE_NAME = ?)`

func (d mysqlDialect) loadTables(ctx context.Context, q querier, only string) ([]*table, error) {
	rows, err := q.QueryContext(ctx, myColumnsSQL, only, only)
	if err != nil {
		return nil, err
	}
	var (
		tables []*table
		byName = map[string]*table{}
	)
	type rawCol struct {
		t        *table
		col      protocol.Column
		dataType string
	}
	var cols []rawCol
	for rows.Next() {
		var tn, dataType string
		var col protocol.Column
		if err := rows.Scan(&tn, &col.Name, &col.Type, &dataType, &col.Nullable); err != nil {
			rows.Close()
			return nil, err
		}
		if isInternal(tn) || (only != "" && tn != only) {
			continue
		}
		t := byName[tn]
		if t == nil {
			t = newTable(tn)
			byName[tn] = t
			tables = append(tables, t)
		}
		cols = append(cols, rawCol{t, col, dataType})
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	jsonCols := map[[2]string]bool{}
	if d.maria {
		rows, err := q.QueryContext(ctx, myJSONChecksSQL, only, only)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var tn, clause string
			if err := rows.Scan(&tn, &clause); err != nil {
				rows.Close()
				return nil, err
			}
			if name, ok := jsonValidColumn(clause); ok {
				jsonCols[[2]string{tn, name}] = true
			}
		}
		if err := closeRows(rows); err != nil {
			return nil, err
		}
	}
	for _, rc := range cols {
		k := mysqlKind(rc.dataType, rc.col.Type)
		if k == kindText && jsonCols[[2]string{rc.t.name, rc.col.Name}] {
			k = kindJSON
			rc.col.Type = "json"
		}
		rc.t.addColumn(rc.col, k)
	}
	if err := loadIndexes(ctx, q, myIndexesSQL, byName, only, only); err != nil {
		return nil, err
	}
	for _, t := range tables {
		t.finish()
	}
	return tables, nil
}

// jsonValidColumn extracts the column of a MariaDB check clause "json_valid(`col`)".
func jsonValidColumn(clause string) (string, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(clause), "json_valid(`")
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, "`)")
	if !ok {
		return "", false
	}
	name = strings.ReplaceAll(name, "``", "`")
	return name, true
}

func (mysqlDialect) outboxDDL(string) []string {
	return []string{"CREATE TABLE IF NOT EXISTS `mooxsync_changes` (" +
		"`seq` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY," +
		"`model` VARCHAR(255) NOT NULL," +
		"`op` VARCHAR(16) NOT NULL," +
		"`row_image` LONGTEXT NOT NULL," +
		"`origin_platform_id` BIGINT NULL," +
		"`changed_at` DATETIME(3) NOT NULL" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"}
}

func (mysqlDialect) appliedDDL() []string {
	return []string{"CREATE TABLE IF NOT EXISTS `mooxsync_applied` (" +
		"`sync_id` BIGINT NOT NULL," +
		"`batch_id` VARCHAR(64) NOT NULL," +
		"`applied_at` DATETIME(3) NOT NULL," +
		"PRIMARY KEY (`sync_id`, `batch_id`)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"}
}

func (mysqlDialect) markAppliedSQL() string {
	return "INSERT INTO `mooxsync_applied` (`sync_id`, `batch_id`, `applied_at`) VALUES (?, ?, ?) " +
		"ON DUPLICATE KEY UPDATE `sync_id` = `sync_id`"
}

// setOrigin sets a session variable. The transaction's connection keeps it until it is
// reset, so a Writer resets it when it begins and before it ends.
func (mysqlDialect) setOrigin(ctx context.Context, q querier, platformID int64) error {
	_, err := q.ExecContext(ctx, `SET @mooxsync_origin = ?`, nullID(platformID))
	return err
}

func (mysqlDialect) maxParams() int { return 65535 }

// upsertClause uses ON DUPLICATE KEY UPDATE only when no unique index other than the key's
// can fire: MySQL would otherwise update whichever row collides, even a different record.
func (d mysqlDialect) upsertClause(t *table, key *column, cols []*column) (string, bool) {
	if !t.uniqueOn(key.Name) || t.otherUniqueTouched(key.Name, cols) {
		return "", false
	}
	set := setExcluded(d, key, cols, func(q string) string { return "VALUES(" + q + ")" })
	if set == "" {
		k := d.QuoteIdent(key.Name)
		set = k + " = " + k
	}
	return "ON DUPLICATE KEY UPDATE " + set, false
}

// ignoreClause returns "": INSERT IGNORE would also swallow data errors, and
// ON DUPLICATE KEY would fire update triggers; the writer checks existence instead.
func (mysqlDialect) ignoreClause(*table, *column) string { return "" }

// rowImage builds JSON_OBJECT over ref ("NEW" or "OLD"). TIMESTAMP columns are taken as
// Unix time so that the application session's time zone cannot shift them; bytes as hex.
func (d mysqlDialect) rowImage(t *table, ref string) string {
	var b strings.Builder
	b.WriteString("JSON_OBJECT(")
	for i, c := range t.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.quoteString(c.Name))
		b.WriteString(", ")
		v := ref + "." + d.QuoteIdent(c.Name)
		switch {
		case c.kind == kindBlob:
			v = "HEX(" + v + ")"
		case c.kind == kindDatetimeTZ:
			v = "UNIX_TIMESTAMP(" + v + ")"
		case strings.HasPrefix(strings.ToLower(c.Type), "bit"):
			v = "CAST(" + v + " AS UNSIGNED)"
		}
		b.WriteString(v)
	}
	b.WriteString(")")
	return b.String()
}

func (d mysqlDialect) triggerSQL(_ string, t *table, names triggerNames) ([]string, error) {
	insert := func(op, img string) string {
		return "INSERT INTO `mooxsync_changes` (`model`, `op`, `row_image`, `origin_platform_id`, `changed_at`) VALUES (" +
			d.quoteString(t.name) + ", " + d.quoteString(op) + ", " + img + ", @mooxsync_origin, UTC_TIMESTAMP(3))"
	}
	var same []string
	for _, c := range t.cols {
		q := d.QuoteIdent(c.Name)
		// Compare bytes: a case-insensitive collation must not hide a change of case.
		same = append(same, "CAST(OLD."+q+" AS BINARY) <=> CAST(NEW."+q+" AS BINARY)")
	}
	cond := "TRUE"
	if len(same) > 0 {
		cond = strings.Join(same, " AND ")
	}
	tn := d.QuoteIdent(t.name)
	return []string{
		"CREATE TRIGGER " + d.QuoteIdent(names.ins) + " AFTER INSERT ON " + tn + " FOR EACH ROW " +
			insert(protocol.EventCreated, d.rowImage(t, "NEW")),
		"CREATE TRIGGER " + d.QuoteIdent(names.upd) + " AFTER UPDATE ON " + tn + " FOR EACH ROW BEGIN IF NOT (" + cond + ") THEN " +
			insert(protocol.EventUpdated, d.rowImage(t, "NEW")) + "; END IF; END",
		"CREATE TRIGGER " + d.QuoteIdent(names.del) + " AFTER DELETE ON " + tn + " FOR EACH ROW " +
			insert(protocol.EventDeleted, d.rowImage(t, "OLD")),
	}, nil
}

func (mysqlDialect) triggersOn(ctx context.Context, q querier, tableName string) ([]string, error) {
	names, err := queryStrings(ctx, q, `SELECT TRIGGER_NAME FROM information_schema.TRIGGERS
		WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ? ORDER BY TRIGGER_NAME`, tableName)
	if err != nil {
		return nil, err
	}
	return filterOurs(names), nil
}

func (mysqlDialect) triggerTables(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT EVENT_OBJECT_TABLE, TRIGGER_NAME FROM information_schema.TRIGGERS
		WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY EVENT_OBJECT_TABLE`)
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		var tn, name string
		if err := rows.Scan(&tn, &name); err != nil {
			rows.Close()
			return nil, err
		}
		if isOurTrigger(name) && (len(out) == 0 || out[len(out)-1] != tn) {
			out = append(out, tn)
		}
	}
	return out, closeRows(rows)
}

func (d mysqlDialect) dropTriggerSQL(_, trigger string) string {
	return "DROP TRIGGER IF EXISTS " + d.QuoteIdent(trigger)
}

func filterOurs(names []string) []string {
	out := names[:0]
	for _, n := range names {
		if isOurTrigger(n) {
			out = append(out, n)
		}
	}
	return out
}
