package state

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// TestMigrate_FromVersion1 opens a state file written by an agent of schema version 1 (before
// token rotation and inbox pruning): its enrollment and inbox carry over.
func TestMigrate_FromVersion1(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		migrations[0],
		"PRAGMA user_version = 1",
		`INSERT INTO enrollment (id, platform_id, platform, platform_token, enrolled_at)
			VALUES (1, 2, '{"id":2,"name":"blog"}', 'token-of-version-1-0123456789abcdef', 1000)`,
		`INSERT INTO inbox (batch_id, sync_id, source_platform_id, first_seq, last_seq, count, body, status,
			received_at, oldest_change_at, done_at) VALUES ('b1', 7, 1, 1, 1, 1, NULL, 'applied', 1000, 1000, 2000)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var version int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("schema version = %d, %v; want %d", version, err, len(migrations))
	}
	e, err := s.Enrollment(ctx)
	if err != nil || e.PlatformToken != "token-of-version-1-0123456789abcdef" || e.PreviousToken != "" ||
		e.RotationPending() || !e.RotatedAt.IsZero() || !e.ConfirmedAt.IsZero() || e.Platform.ID != 2 {
		t.Fatalf("enrollment after migration: %v (platform %d, pending %v)", err, e.Platform.ID, e.RotationPending())
	}
	if b, err := s.LookupBatch(ctx, "b1"); err != nil || b.Status != StatusApplied {
		t.Fatalf("batch after migration = %+v, %v", b, err)
	}
	if n, err := s.PruneInbox(ctx, time.UnixMilli(2000)); err != nil || n != 1 {
		t.Fatalf("prune migrated batch = %d, %v", n, err)
	}
}

// TestPruneInbox_InChunks prunes more applied batches than one statement deletes.
func TestPruneInbox_InChunks(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 2*pruneChunk + 7
	if _, err := s.db.ExecContext(ctx, `WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < ?)
		INSERT INTO inbox (batch_id, sync_id, source_platform_id, first_seq, last_seq, count, status, received_at,
			oldest_change_at, done_at)
		SELECT 'b' || x, 7, 1, x, x, 1, 'applied', 1000, 1000, 2000 FROM i`, n); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO inbox (batch_id, sync_id, source_platform_id, first_seq, last_seq,
		count, status, received_at, oldest_change_at, done_at) VALUES ('late', 7, 1, 0, 0, 1, 'applied', 1000, 1000, 3000)`); err != nil {
		t.Fatal(err)
	}
	got, err := s.PruneInbox(ctx, time.UnixMilli(2000))
	if err != nil || got != n {
		t.Fatalf("pruned %d, %v; want %d", got, err, n)
	}
	if _, err := s.LookupBatch(ctx, "late"); err != nil {
		t.Fatalf("batch applied after the cut: %v", err)
	}
}
