package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3"
	"github.com/oklog/ulid/v2"
)

// schema is the demo application's schema: a small Laravel application's users (with a
// ulid, their key across platforms) and posts (with a slug, theirs). posts.user_id is a
// local id, as in Laravel, but without a foreign key: the demo syncs posts alone, and the
// Blog has other users than the Shop.
const schema = `
CREATE TABLE IF NOT EXISTS users (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  ulid              CHAR(26)     NOT NULL UNIQUE,
  name              VARCHAR(255) NOT NULL,
  email             VARCHAR(255) NOT NULL UNIQUE,
  email_verified_at DATETIME     NULL,
  password          VARCHAR(255) NOT NULL,
  remember_token    VARCHAR(100) NULL,
  created_at        DATETIME     NULL,
  updated_at        DATETIME     NULL
);
CREATE TABLE IF NOT EXISTS posts (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id      INTEGER      NULL,
  slug         VARCHAR(255) NOT NULL UNIQUE,
  title        VARCHAR(255) NOT NULL,
  body         TEXT         NOT NULL,
  published_at DATETIME     NULL,
  created_at   DATETIME     NULL,
  updated_at   DATETIME     NULL
);
CREATE INDEX IF NOT EXISTS posts_user_id_index ON posts (user_id);
`

// fakePassword stands for a bcrypt hash, as Laravel stores passwords; nobody logs in.
const fakePassword = "$2y$12$demo.demo.demo.demo.demo.uW8m1a0q7hYlQ0mS7m3nE7Vq2r5b3u"

type seedUser struct{ name, email string }

type seedPost struct{ slug, title, body string }

// seeds are the rows each site's database starts with.
var seeds = map[string]struct {
	users []seedUser
	posts []seedPost
}{
	"shop": {
		users: []seedUser{
			{"Ada Lovelace", "ada@shop.localhost"},
			{"Grace Hopper", "grace@shop.localhost"},
			{"Alan Turing", "alan@shop.localhost"},
		},
		posts: []seedPost{
			{"spring-sale", "Spring sale", "Everything 20% off until Sunday."},
			{"new-arrivals", "New arrivals", "The summer collection is in."},
			{"free-shipping", "Free shipping", "Free shipping on orders over 50 EUR."},
		},
	},
	"blog": {
		users: []seedUser{
			{"Linus Torvalds", "linus@blog.localhost"},
			{"Margaret Hamilton", "margaret@blog.localhost"},
		},
		posts: []seedPost{
			{"hello-world", "Hello world", "The blog's first post."},
			{"release-notes", "Release notes", "What changed this month."},
		},
	},
}

// CreateAppDB creates the SQLite application database of a site ("shop" or "blog") at
// path with the demo schema and its seed rows, unless the file exists already; it reports
// whether it created it. An existing database is left as it is: it holds what the admin
// and the sync made of it.
func CreateAppDB(ctx context.Context, path, site string) (bool, error) {
	seed, ok := seeds[site]
	if !ok {
		return false, fmt.Errorf("demo database: unknown site %q (want shop or blog)", site)
	}
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("demo database: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("demo database: %w", err)
	}
	// Built next to its final name and renamed, so that an interrupted run never leaves a
	// half-seeded database that the next run would keep.
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := createAppDB(ctx, tmp, seed.users, seed.posts); err != nil {
		_ = os.Remove(tmp)
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return false, fmt.Errorf("demo database: %w", err)
	}
	return true, nil
}

func createAppDB(ctx context.Context, path string, users []seedUser, posts []seedPost) (err error) {
	db, err := sql.Open("sqlite3", path+"?_busy_timeout=5000")
	if err != nil {
		return fmt.Errorf("demo database: %w", err)
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("demo database: %w", cerr)
		}
	}()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("demo database: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("demo database: schema: %w", err)
	}
	now := time.Now().UTC()
	stamp := now.Format(time.DateTime)
	for i, u := range users {
		id := ulid.MustNew(ulid.Timestamp(now.Add(time.Duration(i)*time.Millisecond)), ulid.DefaultEntropy())
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (ulid, name, email, email_verified_at, password, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, id.String(), u.name, u.email, stamp, fakePassword, stamp, stamp); err != nil {
			return fmt.Errorf("demo database: seed users: %w", err)
		}
	}
	for i, p := range posts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO posts (user_id, slug, title, body, published_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, i%len(users)+1, p.slug, p.title, p.body, stamp, stamp, stamp); err != nil {
			return fmt.Errorf("demo database: seed posts: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("demo database: %w", err)
	}
	return nil
}
