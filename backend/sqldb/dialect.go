package sqldb

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// Dialect is what callers may need to know about the SQL of the database behind a DB.
type Dialect interface {
	// Name is "sqlite", "postgres" or "mysql".
	Name() string
	// QuoteIdent quotes an identifier (table or column name) for this dialect. Names that
	// reach SQL should come from the introspected schema; quoting is the second line of defence.
	QuoteIdent(name string) string
	// Placeholder is the bind parameter for the n-th argument, counting from 1.
	Placeholder(n int) string
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// dialect is the full contract each database implements.
type dialect interface {
	Dialect
	flavor() flavor
	// currentSchema returns the schema (PostgreSQL) or database (MySQL) the connection works in.
	currentSchema(ctx context.Context, q querier) (string, error)
	// loadTables introspects the application tables, or only the named one when only != "".
	loadTables(ctx context.Context, q querier, only string) ([]*table, error)
	outboxDDL(schema string) []string
	appliedDDL() []string
	// markAppliedSQL inserts (sync_id, batch_id, applied_at), leaving an existing row alone;
	// RowsAffected is 1 only when the row is new.
	markAppliedSQL() string
	setOrigin(ctx context.Context, q querier, platformID int64) error
	// maxParams is the most bind parameters one statement may have.
	maxParams() int
	// upsertClause is the clause that turns an INSERT of cols into an upsert on key, with
	// returning true when it ends in RETURNING (xmax = 0), one row per inserted or changed
	// row. It is "" when the table has no unique index the dialect can use for key.
	upsertClause(t *table, key *column, cols []*column) (clause string, returning bool)
	// ignoreClause is the clause that makes an INSERT do nothing for a row whose key
	// exists (RowsAffected counts the rows inserted), or "" when the dialect has none it can
	// use for this table.
	ignoreClause(t *table, key *column) string
	triggerSQL(schema string, t *table, names triggerNames) ([]string, error)
	triggersOn(ctx context.Context, q querier, tableName string) ([]string, error)
	triggerTables(ctx context.Context, q querier) ([]string, error)
	dropTriggerSQL(tableName, trigger string) string
	// ddlInTx reports whether DDL can run inside a transaction and roll back.
	ddlInTx() bool
}

// quoteWith doubles q inside name and wraps it in q.
func quoteWith(q byte, name string) string {
	var b strings.Builder
	b.Grow(len(name) + 2)
	b.WriteByte(q)
	for i := 0; i < len(name); i++ {
		if name[i] == q {
			b.WriteByte(q)
		}
		b.WriteByte(name[i])
	}
	b.WriteByte(q)
	return b.String()
}

// quoteString renders s as a standard SQL string literal.
func quoteString(s string) string { return quoteWith('\'', s) }

func questionMark(int) string { return "?" }

func dollar(n int) string { return "$" + strconv.Itoa(n) }

// insertSQL builds a plain INSERT of one row of cols.
func insertSQL(d Dialect, t *table, cols []*column) string { return insertRowsSQL(d, t, cols, 1) }

// insertRowsSQL builds an INSERT of n rows of cols.
func insertRowsSQL(d Dialect, t *table, cols []*column, n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + d.QuoteIdent(t.name) + " (" + columnList(d, cols) + ") VALUES ")
	p := 1
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(")
		for i := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(d.Placeholder(p))
			p++
		}
		b.WriteString(")")
	}
	return b.String()
}

// inSQL builds SELECT key FROM t WHERE key IN (n placeholders).
func inSQL(d Dialect, t *table, key *column, n int) string {
	var b strings.Builder
	k := d.QuoteIdent(key.Name)
	b.WriteString("SELECT " + k + " FROM " + d.QuoteIdent(t.name) + " WHERE " + k + " IN (")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.Placeholder(i + 1))
	}
	b.WriteString(")")
	return b.String()
}

// setExcluded builds "c = <prefix>c, ..." for the columns other than key; wrap renders the
// new value of a column (e.g. "excluded.c" or "VALUES(c)").
func setExcluded(d Dialect, key *column, cols []*column, wrap func(quoted string) string) string {
	var b strings.Builder
	for _, c := range cols {
		if c == key {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		q := d.QuoteIdent(c.Name)
		b.WriteString(q + " = " + wrap(q))
	}
	return b.String()
}

// updateSQL builds UPDATE t SET cols... WHERE key = last placeholder.
func updateSQL(d Dialect, t *table, key *column, cols []*column) string {
	var b strings.Builder
	b.WriteString("UPDATE ")
	b.WriteString(d.QuoteIdent(t.name))
	b.WriteString(" SET ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.QuoteIdent(c.Name))
		b.WriteString(" = ")
		b.WriteString(d.Placeholder(i + 1))
	}
	b.WriteString(" WHERE ")
	b.WriteString(d.QuoteIdent(key.Name))
	b.WriteString(" = ")
	b.WriteString(d.Placeholder(len(cols) + 1))
	return b.String()
}

func deleteSQL(d Dialect, t *table, key *column) string {
	return "DELETE FROM " + d.QuoteIdent(t.name) + " WHERE " + d.QuoteIdent(key.Name) + " = " + d.Placeholder(1)
}

func existsSQL(d Dialect, t *table, key *column) string {
	return "SELECT 1 FROM " + d.QuoteIdent(t.name) + " WHERE " + d.QuoteIdent(key.Name) + " = " + d.Placeholder(1) + " LIMIT 1"
}

func selectSQL(d Dialect, t *table, key *column) string {
	return "SELECT " + columnList(d, t.cols) + " FROM " + d.QuoteIdent(t.name) + " WHERE " +
		d.QuoteIdent(key.Name) + " = " + d.Placeholder(1) + " LIMIT 1"
}

// columnList writes "a, b, c" quoted.
func columnList(d Dialect, cols []*column) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.QuoteIdent(c.Name))
	}
	return b.String()
}
