package demo

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

func TestCreateAppDB(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.db")
	created, err := CreateAppDB(ctx, path, "shop")
	if err != nil || !created {
		t.Fatalf("CreateAppDB = %v, %v; want created", created, err)
	}
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var users, posts, ulids int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM posts),
		(SELECT count(*) FROM users WHERE length(ulid) = 26)`).Scan(&users, &posts, &ulids); err != nil {
		t.Fatal(err)
	}
	if users != 3 || posts != 3 || ulids != 3 {
		t.Errorf("users %d, posts %d, users with a ulid %d; want 3, 3, 3", users, posts, ulids)
	}

	// An existing database is kept as it is.
	if _, err := db.Exec(`DELETE FROM posts`); err != nil {
		t.Fatal(err)
	}
	if created, err := CreateAppDB(ctx, path, "shop"); err != nil || created {
		t.Fatalf("CreateAppDB again = %v, %v; want kept", created, err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM posts`).Scan(&posts); err != nil || posts != 0 {
		t.Errorf("posts after a second CreateAppDB = %d, %v; want 0", posts, err)
	}
	if _, err := CreateAppDB(ctx, filepath.Join(dir, "x.db"), "wiki"); err == nil {
		t.Error("CreateAppDB of an unknown site: want an error")
	}
}

func openCatalog(t *testing.T, path string) *catalog.Store {
	t.Helper()
	cat, err := catalog.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cat.Close() })
	return cat
}

func TestRegister(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sites := Sites(7441, 7442)
	cat := openCatalog(t, filepath.Join(dir, "catalog.db"))
	sec := secrets.NewMemory()

	reg, err := Register(ctx, cat, sec, dir, sites)
	if err != nil {
		t.Fatal(err)
	}
	if !reg.NewSyncToken || len(reg.Created) != 2 || !reg.SyncCreated || len(reg.Reset) != 0 {
		t.Fatalf("first Register = %+v; want a new token, two platforms, the sync, no reset", reg)
	}
	if reg.Sync.Title != "shop.localhost (posts) to blog.localhost (posts)" {
		t.Errorf("sync title %q", reg.Sync.Title)
	}
	for _, p := range reg.Platforms {
		if _, err := sec.Get(ctx, secrets.PlatformKey(p.ID)); err != nil {
			t.Errorf("token of %s: %v", p.Name, err)
		}
	}

	// Idempotent; an agent state of this binding is kept, and the admin's edits too.
	state := filepath.Join(sites[0].AgentDir(dir), "agent.db")
	if err := os.WriteFile(state, []byte("state"), 0o600); err != nil {
		t.Fatal(err)
	}
	shop := reg.Platforms[0]
	shop.Name = "My shop"
	if _, err := cat.UpdatePlatform(ctx, shop); err != nil {
		t.Fatal(err)
	}
	if err := cat.MarkEnrolled(ctx, shop.ID); err != nil {
		t.Fatal(err)
	}
	again, err := Register(ctx, cat, sec, dir, sites)
	if err != nil {
		t.Fatal(err)
	}
	if again.NewSyncToken || len(again.Created) != 0 || again.SyncCreated || len(again.Reset) != 0 {
		t.Fatalf("second Register = %+v; want nothing new", again)
	}
	if again.SyncToken != reg.SyncToken || again.Platforms[0].Name != "My shop" || !again.Platforms[0].Enrolled() {
		t.Errorf("second Register changed the fleet: %+v", again.Platforms[0])
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("agent state removed: %v", err)
	}

	// The keyring lost the Shop's token: the agent holds the old one, so its state goes
	// and the catalog forgets the enrollment.
	if err := sec.Delete(ctx, secrets.PlatformKey(shop.ID)); err != nil {
		t.Fatal(err)
	}
	third, err := Register(ctx, cat, sec, dir, sites)
	if err != nil {
		t.Fatal(err)
	}
	if len(third.Reset) != 1 || third.Reset[0] != "My shop" || third.Platforms[0].Enrolled() {
		t.Errorf("third Register reset %v, shop enrolled %v; want the shop reset", third.Reset, third.Platforms[0].Enrolled())
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("stale agent state kept: %v", err)
	}

	// Another catalog (e.g. the user's was deleted): both agents start afresh.
	other := openCatalog(t, filepath.Join(dir, "other.db"))
	fourth, err := Register(ctx, other, sec, dir, sites)
	if err != nil {
		t.Fatal(err)
	}
	if len(fourth.Created) != 2 || len(fourth.Reset) != 2 {
		t.Errorf("Register in another catalog = created %v, reset %v", fourth.Created, fourth.Reset)
	}
	if b, err := os.ReadFile(filepath.Join(sites[1].AgentDir(dir), bindingFile)); err != nil ||
		string(b) != binding(other, fourth.Platforms[1], mustGet(t, sec, secrets.PlatformKey(fourth.Platforms[1].ID)))+"\n" {
		t.Errorf("binding of the Blog's agent not renewed: %q, %v", b, err)
	}
}

func mustGet(t *testing.T, s secrets.Store, key string) string {
	t.Helper()
	v, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
