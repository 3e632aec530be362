package catalog_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/catalog"
)

// MustOpen opens a catalog in a fresh temporary directory, with a clock that starts at
// 2026-01-01T00:00:00Z and advances one second per reading, and closes it at cleanup.
func MustOpen(tb testing.TB) *catalog.Store {
	tb.Helper()
	s, err := catalog.Open(filepath.Join(tb.TempDir(), "catalog.db"))
	if err != nil {
		tb.Fatalf("open catalog: %v", err)
	}
	s.Now = fakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close catalog: %v", err)
		}
	})
	return s
}

func fakeClock(start time.Time) func() time.Time {
	var mu sync.Mutex
	t := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

// MustCreatePlatform creates a platform named name with domain name.example.
func MustCreatePlatform(tb testing.TB, s *catalog.Store, name string) catalog.Platform {
	tb.Helper()
	p, err := s.CreatePlatform(context.Background(), catalog.Platform{
		Name:       name,
		Domain:     strings.ToLower(name) + ".example",
		AgentURL:   "https://" + strings.ToLower(name) + ".example:7443",
		ShowInMenu: true,
	})
	if err != nil {
		tb.Fatalf("create platform %s: %v", name, err)
	}
	return p
}

// MustCreateSync creates an enabled sync of all fields of model from src to dst.
func MustCreateSync(tb testing.TB, s *catalog.Store, src, dst catalog.Platform, model string) catalog.Sync {
	tb.Helper()
	sy, err := s.CreateSync(context.Background(), catalog.Sync{
		SourcePlatformID: src.ID, SourceModel: model,
		TargetPlatformID: dst.ID, TargetModel: model,
		SyncAllFields: true, Interval: 60, Status: true,
	})
	if err != nil {
		tb.Fatalf("create sync %s: %v", model, err)
	}
	return sy
}

func mustRevision(tb testing.TB, s *catalog.Store) int64 {
	tb.Helper()
	rev, err := s.Revision(context.Background())
	if err != nil {
		tb.Fatalf("revision: %v", err)
	}
	return rev
}

func TestOpen(t *testing.T) {
	ctx := context.Background()

	t.Run("MigratesEmptyFile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sub", "dir", "catalog.db")
		s, err := catalog.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if v, err := s.SchemaVersion(ctx); err != nil || v != 2 {
			t.Fatalf("schema version = %d, %v; want 2", v, err)
		}
		if rev := mustRevision(t, s); rev != 0 {
			t.Fatalf("revision = %d, want 0", rev)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Fatalf("catalog mode = %v, want 0600", perm)
		}
		di, err := os.Stat(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		if perm := di.Mode().Perm(); perm != 0o700 {
			t.Fatalf("catalog dir mode = %v, want 0700", perm)
		}
	})

	t.Run("ReopenIsNoOp", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "catalog.db")
		s, err := catalog.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		p := MustCreatePlatform(t, s, "Shop")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			s, err = catalog.Open(path)
			if err != nil {
				t.Fatalf("reopen %d: %v", i, err)
			}
			got, err := s.Platform(ctx, p.ID)
			if err != nil || got.Name != "Shop" {
				t.Fatalf("platform after reopen = %+v, %v", got, err)
			}
			if rev := mustRevision(t, s); rev != 1 {
				t.Fatalf("revision after reopen = %d, want 1", rev)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		db := mustRawDB(t, path)
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("schema_migrations rows = %d, %v; want 2", n, err)
		}
	})

	t.Run("RefusesNewerSchema", func(t *testing.T) {
		path := mustCatalogFile(t)
		db := mustRawDB(t, path)
		if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 'x')`); err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.Open(path); !errors.Is(err, catalog.ErrSchemaTooNew) {
			t.Fatalf("open newer catalog: err = %v, want ErrSchemaTooNew", err)
		}
	})

	t.Run("RefusesBadPath", func(t *testing.T) {
		for _, path := range []string{"", filepath.Join(t.TempDir(), "what?.db")} {
			if _, err := catalog.Open(path); err == nil {
				t.Errorf("Open(%q) succeeded", path)
			}
		}
	})

	t.Run("NoTokenColumns", func(t *testing.T) {
		path := mustCatalogFile(t)
		db := mustRawDB(t, path)
		rows, err := db.Query(`SELECT m.name, c.name FROM sqlite_master m, pragma_table_info(m.name) c WHERE m.type = 'table'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var columns int
		for rows.Next() {
			var table, column string
			if err := rows.Scan(&table, &column); err != nil {
				t.Fatal(err)
			}
			columns++
			if strings.Contains(column, "token") || strings.Contains(column, "secret") || strings.Contains(column, "key") && table != "meta" {
				t.Errorf("column %s.%s looks like it holds a secret", table, column)
			}
		}
		if columns < 40 {
			t.Fatalf("saw only %d columns", columns)
		}
	})
}

// mustCatalogFile creates a migrated, closed catalog file and returns its path.
func mustCatalogFile(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "catalog.db")
	s, err := catalog.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// mustRawDB opens the catalog file directly, for checks the Store API does not expose.
func mustRawDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/tmp/xdg-config")
	t.Setenv("HOME", "/tmp/home")
	got, err := catalog.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	if dir, _ := os.UserConfigDir(); got != filepath.Join(dir, "mooxsync", "catalog.db") {
		t.Fatalf("DefaultPath = %q", got)
	}
	if !strings.HasSuffix(got, filepath.Join("mooxsync", "catalog.db")) {
		t.Fatalf("DefaultPath = %q, want .../mooxsync/catalog.db", got)
	}
}

func TestStore_BumpRevision(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	for want := int64(1); want <= 3; want++ {
		got, err := s.BumpRevision(ctx)
		if err != nil || got != want {
			t.Fatalf("BumpRevision = %d, %v; want %d", got, err, want)
		}
	}
	if rev := mustRevision(t, s); rev != 3 {
		t.Fatalf("Revision = %d, want 3", rev)
	}
}

func TestStore_Snapshot(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)

	t.Run("Empty", func(t *testing.T) {
		snap, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Revision != 0 || snap.Platforms == nil || len(snap.Platforms) != 0 || snap.Syncs == nil || len(snap.Syncs) != 0 {
			t.Fatalf("empty snapshot = %+v (lists must be empty, not nil)", snap)
		}
	})

	t.Run("RevisionMatchesContent", func(t *testing.T) {
		shop := MustCreatePlatform(t, s, "Shop")
		blog := MustCreatePlatform(t, s, "Blog")
		MustCreateSync(t, s, shop, blog, "posts")
		snap, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Revision != 3 || len(snap.Platforms) != 2 || len(snap.Syncs) != 1 {
			t.Fatalf("snapshot: revision %d, %d platforms, %d syncs; want 3, 2, 1", snap.Revision, len(snap.Platforms), len(snap.Syncs))
		}
	})

	t.Run("ConcurrentWriters", func(t *testing.T) {
		// Each snapshot's revision must count exactly the changes it shows.
		base := mustRevision(t, s)
		baseSyncs, err := s.Syncs(ctx, catalog.SyncFilter{})
		if err != nil {
			t.Fatal(err)
		}
		shop, blog := MustCreatePlatform(t, s, "Writer1"), MustCreatePlatform(t, s, "Writer2")
		base += 2
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := s.CreateSync(ctx, catalog.Sync{SourcePlatformID: shop.ID, SourceModel: "m" + string(rune('a'+i)),
					TargetPlatformID: blog.ID, TargetModel: "t", SyncAllFields: true, Interval: 1}); err != nil {
					t.Error(err)
				}
			}
		}()
		for i := 0; i < 20; i++ {
			snap, err := s.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if added := int64(len(snap.Syncs) - len(baseSyncs)); snap.Revision != base+added {
				t.Fatalf("snapshot revision %d with %d new syncs, want %d", snap.Revision, added, base+added)
			}
		}
		wg.Wait()
	})
}

func TestValidationError(t *testing.T) {
	s := MustOpen(t)
	_, err := s.CreatePlatform(context.Background(), catalog.Platform{})
	var ve *catalog.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want *ValidationError", err)
	}
	if ve.Field != "name" || ve.Error() != "name: name is required" {
		t.Fatalf("ValidationError = %+v / %q", ve, ve.Error())
	}
	if !errors.Is(err, catalog.ErrInvalid) || errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("errors.Is: invalid %v, conflict %v; want true, false", errors.Is(err, catalog.ErrInvalid), errors.Is(err, catalog.ErrConflict))
	}
}
