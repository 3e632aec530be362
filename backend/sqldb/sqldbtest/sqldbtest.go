// Package sqldbtest opens isolated application databases for tests: a SQLite file in a
// temporary directory, a fresh PostgreSQL schema, a fresh MySQL/MariaDB database. Tests of
// several packages run in parallel against the same servers, so each database gets a random
// name and is dropped when the test ends.
//
// The servers come from MOOXSYNC_TEST_POSTGRES and MOOXSYNC_TEST_MYSQL (defaults below).
// A server that cannot be reached skips the test, or fails it when CI=true.
package sqldbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// Default server addresses, used when the environment names none.
const (
	DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultMySQL    = "mysql://root@tcp(127.0.0.1:3306)/test"
)

// connectTimeout bounds how long an unreachable server delays a test.
const connectTimeout = 5 * time.Second

// MustOpenSQLite opens a new SQLite database file in tb's temporary directory.
func MustOpenSQLite(tb testing.TB) *sqldb.DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "app.db")
	db, err := sqldb.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// MustOpenPostgres opens a connection whose search_path is a new schema mooxsync_t_<random>,
// dropped with everything in it on cleanup.
func MustOpenPostgres(tb testing.TB) *sqldb.DB {
	tb.Helper()
	dsn := env("MOOXSYNC_TEST_POSTGRES", DefaultPostgres)
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("MOOXSYNC_TEST_POSTGRES is not a URL: %v", err)
	}
	q := u.Query()
	if !q.Has("connect_timeout") {
		q.Set("connect_timeout", "5")
	}
	u.RawQuery = q.Encode()
	admin, err := sql.Open("pgx", u.String())
	if err != nil {
		tb.Fatalf("postgres: %v", err)
	}
	tb.Cleanup(func() { admin.Close() })
	ping(tb, "postgres", admin)

	schema := "mooxsync_t_" + randomHex(6)
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sqldb.Open(ctx, u.String())
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	if db.Schema() != schema {
		tb.Fatalf("postgres current schema is %q, want %q", db.Schema(), schema)
	}
	return db
}

// MustOpenMySQL opens a new database mooxsync_t_<random>, dropped on cleanup.
func MustOpenMySQL(tb testing.TB) *sqldb.DB {
	tb.Helper()
	dsn := env("MOOXSYNC_TEST_MYSQL", DefaultMySQL)
	rest, ok := strings.CutPrefix(dsn, "mysql://")
	if !ok {
		tb.Fatalf("MOOXSYNC_TEST_MYSQL must start with mysql://")
	}
	cfg, err := mysql.ParseDSN(rest)
	if err != nil {
		tb.Fatalf("MOOXSYNC_TEST_MYSQL: %v", err)
	}
	cfg.Timeout = connectTimeout
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		tb.Fatalf("mysql: %v", err)
	}
	admin := sql.OpenDB(conn)
	tb.Cleanup(func() { admin.Close() })
	ping(tb, "mysql", admin)

	name := "mooxsync_t_" + randomHex(6)
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	db, err := sqldb.Open(ctx, "mysql://"+cfg.FormatDSN())
	if err != nil {
		tb.Fatalf("open mysql: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Dialects are the names ForEachDialect runs, in order.
var Dialects = []string{"sqlite", "postgres", "mysql"}

// MustOpen opens an isolated database of the named dialect.
func MustOpen(tb testing.TB, dialect string) *sqldb.DB {
	tb.Helper()
	switch dialect {
	case "sqlite":
		return MustOpenSQLite(tb)
	case "postgres":
		return MustOpenPostgres(tb)
	case "mysql":
		return MustOpenMySQL(tb)
	}
	tb.Fatalf("unknown dialect %q", dialect)
	return nil
}

// ForEachDialect runs fn as a subtest per dialect, each with its own fresh database.
func ForEachDialect(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Helper()
	for _, name := range Dialects {
		t.Run(name, func(t *testing.T) {
			fn(t, MustOpen(t, name))
		})
	}
}

// ping skips (or, under CI=true, fails) the test when the server cannot be reached.
func ping(tb testing.TB, what string, db *sql.DB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s test server unreachable (CI=true): %v", what, err)
		}
		tb.Skipf("%s test server unreachable: %v", what, err)
	}
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
