package sqldbtest

import (
	"context"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// MustExec runs the statement written for db's dialect (keys "sqlite", "postgres",
// "mysql"; "" for all), each ";\n"-separated part on its own.
func MustExec(tb testing.TB, db *sqldb.DB, byDialect map[string]string) {
	tb.Helper()
	q, ok := byDialect[db.Dialect().Name()]
	if !ok {
		q, ok = byDialect[""]
	}
	if !ok {
		tb.Fatalf("no statement for dialect %s", db.Dialect().Name())
	}
	for _, part := range strings.Split(q, ";\n") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		if _, err := db.SQL().ExecContext(context.Background(), part); err != nil {
			tb.Fatalf("exec %q: %v", part, err)
		}
	}
}

// PostsColumns are the columns of the table CreatePosts makes, in order.
var PostsColumns = []string{
	"id", "ulid", "slug", "title", "body", "views", "price", "rating", "published",
	"meta", "published_at", "created_at",
}

// CreatePosts creates a Laravel-like posts table named name: an auto-increment id, a unique
// ulid, a slug without an index, text, numbers, a boolean, a JSON document, a naive
// datetime (published_at) and an instant (created_at: PG timestamptz, MySQL TIMESTAMP).
func CreatePosts(tb testing.TB, db *sqldb.DB, name string) {
	tb.Helper()
	q := db.Dialect().QuoteIdent(name)
	MustExec(tb, db, map[string]string{
		"sqlite": `CREATE TABLE ` + q + ` (
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			ulid VARCHAR(26) NOT NULL UNIQUE,
			slug VARCHAR(255),
			title TEXT,
			body TEXT,
			views BIGINT,
			price NUMERIC(12,2),
			rating REAL,
			published BOOLEAN NOT NULL DEFAULT 0,
			meta JSON,
			published_at DATETIME,
			created_at TIMESTAMP
		)`,
		"postgres": `CREATE TABLE ` + q + ` (
			id BIGSERIAL PRIMARY KEY,
			ulid VARCHAR(26) NOT NULL UNIQUE,
			slug VARCHAR(255),
			title TEXT,
			body TEXT,
			views BIGINT,
			price NUMERIC(12,2),
			rating DOUBLE PRECISION,
			published BOOLEAN NOT NULL DEFAULT false,
			meta JSONB,
			published_at TIMESTAMP(3),
			created_at TIMESTAMPTZ(3)
		)`,
		"mysql": `CREATE TABLE ` + q + ` (
			id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
			ulid VARCHAR(26) NOT NULL UNIQUE,
			slug VARCHAR(255),
			title TEXT,
			body MEDIUMTEXT,
			views BIGINT,
			price DECIMAL(12,2),
			rating DOUBLE,
			published TINYINT(1) NOT NULL DEFAULT 0,
			meta JSON,
			published_at DATETIME(3),
			created_at TIMESTAMP(3) NULL
		) ENGINE=InnoDB`,
	})
}
