package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// observe records an online status of platformID reporting the given syncs.
func observe(tb testing.TB, s *catalog.Store, platformID int64, syncs ...protocol.SyncStatus) catalog.AgentStatus {
	tb.Helper()
	st, err := s.RecordStatus(context.Background(), catalog.AgentStatus{PlatformID: platformID, Online: true,
		Status: &protocol.Status{PlatformID: platformID, Revision: 3, Version: "0.1.0", UptimeS: 10, Syncs: syncs}})
	if err != nil {
		tb.Fatalf("record status: %v", err)
	}
	return st
}

func TestStore_RecordStatus(t *testing.T) {
	ctx := context.Background()

	t.Run("StoresSnapshot", func(t *testing.T) {
		s := MustOpen(t)
		shop := MustCreatePlatform(t, s, "Shop")
		rev := mustRevision(t, s)
		rec := observe(t, s, shop.ID, protocol.SyncStatus{ID: 42, Role: "source", Status: true, Pending: 3})
		if rec.ID == 0 || rec.Version != "0.1.0" || rec.Revision != 3 || rec.At.IsZero() {
			t.Fatalf("recorded = %s", mustJSON(t, rec))
		}
		got, err := s.LatestStatus(ctx, shop.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, got, rec) {
			t.Fatalf("LatestStatus\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, rec))
		}
		if got.Status.Syncs[0].Pending != 3 {
			t.Fatalf("raw status not kept: %s", mustJSON(t, got.Status))
		}
		if after := mustRevision(t, s); after != rev {
			t.Fatalf("status bumped the revision to %d", after)
		}
	})

	t.Run("Offline", func(t *testing.T) {
		s := MustOpen(t)
		shop := MustCreatePlatform(t, s, "Shop")
		at := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
		rec, err := s.RecordStatus(ctx, catalog.AgentStatus{PlatformID: shop.ID, At: at, Error: ptr(" connection refused ")})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.LatestStatus(ctx, shop.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Online || got.Status != nil || *got.Error != "connection refused" || !got.At.Equal(at.Truncate(time.Millisecond)) || !jsonEqual(t, got, rec) {
			t.Fatalf("offline snapshot = %s", mustJSON(t, got))
		}
	})

	t.Run("Retention", func(t *testing.T) {
		s := MustOpen(t)
		s.StatusRetention = 3
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		observe(t, s, blog.ID)
		for i := 0; i < 5; i++ {
			observe(t, s, shop.ID)
		}
		latest, err := s.LatestStatuses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(latest) != 2 || latest[0].PlatformID != shop.ID || latest[1].PlatformID != blog.ID || latest[0].ID != 6 {
			t.Fatalf("LatestStatuses = %s", mustJSON(t, latest))
		}
		// Only 3 of shop's 5 snapshots are left; each error appears in the activity feed.
		for i := 0; i < 3; i++ {
			if _, err := s.RecordStatus(ctx, catalog.AgentStatus{PlatformID: shop.ID, Error: ptr(fmt.Sprintf("e%d", i))}); err != nil {
				t.Fatal(err)
			}
		}
		act, err := s.Activity(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(act) != 3 {
			t.Fatalf("activity = %s, want the 3 kept errors", mustJSON(t, act))
		}
	})

	t.Run("Errors", func(t *testing.T) {
		s := MustOpen(t)
		shop := MustCreatePlatform(t, s, "Shop")
		if _, err := s.RecordStatus(ctx, catalog.AgentStatus{PlatformID: 99}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("status of missing platform: %v", err)
		}
		_, err := s.RecordStatus(ctx, catalog.AgentStatus{PlatformID: shop.ID, Online: true, Status: &protocol.Status{PlatformID: 2}})
		wantField(t, err, "status", catalog.ErrInvalid)
		if _, err := s.LatestStatus(ctx, shop.ID); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("LatestStatus with none: %v", err)
		}
	})

	t.Run("ObservedSyncColumns", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		sy := MustCreateSync(t, s, shop, blog, "posts")
		rev := mustRevision(t, s)
		check := func(t *testing.T, hasErrors bool, msg, last string) {
			t.Helper()
			got, err := s.Sync(ctx, sy.ID)
			if err != nil {
				t.Fatal(err)
			}
			gotMsg, gotLast := "", ""
			if got.ErrorMessage != nil {
				gotMsg = *got.ErrorMessage
			}
			if got.LastSync != nil {
				gotLast = got.LastSync.Format(time.RFC3339)
			}
			if got.HasErrors != hasErrors || gotMsg != msg || gotLast != last {
				t.Fatalf("observed: has_errors %v, error_message %q, last_sync %q; want %v, %q, %q",
					got.HasErrors, gotMsg, gotLast, hasErrors, msg, last)
			}
		}

		observe(t, s, shop.ID, protocol.SyncStatus{ID: sy.ID, Role: "source", LastSync: ptr("2026-11-26T12:00:00Z"),
			HasErrors: true, ErrorMessage: ptr("target refused batch")})
		check(t, true, "source: target refused batch", "2026-11-26T12:00:00Z")

		observe(t, s, blog.ID, protocol.SyncStatus{ID: sy.ID, Role: "target", LastSync: ptr("2026-11-26T11:59:00.5Z"), HasErrors: true})
		check(t, true, "source: target refused batch; target: error", "2026-11-26T11:59:00Z")

		observe(t, s, shop.ID, protocol.SyncStatus{ID: sy.ID, Role: "source", LastSync: ptr("2026-11-26T12:05:00Z")})
		check(t, true, "target: error", "2026-11-26T11:59:00Z")

		observe(t, s, blog.ID, protocol.SyncStatus{ID: sy.ID, Role: "target", LastSync: ptr("2026-11-26T12:05:01Z")},
			protocol.SyncStatus{ID: 999, Role: "target"}) // a sync deleted since is ignored
		check(t, false, "", "2026-11-26T12:05:01Z")

		// An offline snapshot changes nothing.
		if _, err := s.RecordStatus(ctx, catalog.AgentStatus{PlatformID: blog.ID, Error: ptr("timeout")}); err != nil {
			t.Fatal(err)
		}
		check(t, false, "", "2026-11-26T12:05:01Z")

		if after := mustRevision(t, s); after != rev {
			t.Fatalf("observations bumped the revision from %d to %d", rev, after)
		}
	})
}

func TestStore_RecordPush(t *testing.T) {
	ctx := context.Background()

	t.Run("Stores", func(t *testing.T) {
		s := MustOpen(t)
		shop := MustCreatePlatform(t, s, "Shop")
		p, err := s.RecordPush(ctx, catalog.Push{PlatformID: shop.ID, Revision: 1, Result: catalog.PushFailed,
			Code: string(protocol.CodeConflict), Message: "older revision", DurationMS: 12})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Pushes(ctx, shop.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !jsonEqual(t, got[0], p) {
			t.Fatalf("Pushes = %s, want [%s]", mustJSON(t, got), mustJSON(t, p))
		}
		if pl, _ := s.Platform(ctx, shop.ID); pl.AckedRevision != 0 {
			t.Fatalf("RecordPush changed acked_revision to %d", pl.AckedRevision)
		}
	})

	t.Run("Retention", func(t *testing.T) {
		s := MustOpen(t)
		s.PushRetention = 2
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		for i := int64(1); i <= 4; i++ {
			for _, id := range []int64{shop.ID, blog.ID} {
				if _, err := s.RecordPush(ctx, catalog.Push{PlatformID: id, Revision: i, Result: catalog.PushOK}); err != nil {
					t.Fatal(err)
				}
			}
		}
		got, err := s.Pushes(ctx, shop.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Revision != 4 || got[1].Revision != 3 {
			t.Fatalf("kept pushes = %s", mustJSON(t, got))
		}
		if all, _ := s.Pushes(ctx, 0, 0); len(all) != 4 {
			t.Fatalf("all pushes = %d, want 4", len(all))
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		s := MustOpen(t)
		shop := MustCreatePlatform(t, s, "Shop")
		_, err := s.RecordPush(ctx, catalog.Push{PlatformID: shop.ID, Result: "maybe"})
		wantField(t, err, "result", catalog.ErrInvalid)
		_, err = s.RecordPush(ctx, catalog.Push{PlatformID: shop.ID, Result: catalog.PushOK, DurationMS: -1})
		wantField(t, err, "duration_ms", catalog.ErrInvalid)
		if _, err := s.RecordPush(ctx, catalog.Push{PlatformID: 99, Result: catalog.PushOK}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("push of missing platform: %v", err)
		}
	})
}

func TestStore_Activity(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
	down := func(id int64, msg string) {
		t.Helper()
		if _, err := s.RecordStatus(ctx, catalog.AgentStatus{PlatformID: id, Error: ptr(msg)}); err != nil {
			t.Fatal(err)
		}
	}
	push := func(id int64, result string) {
		t.Helper()
		if _, err := s.RecordPush(ctx, catalog.Push{PlatformID: id, Revision: 2, Result: result, DurationMS: 5}); err != nil {
			t.Fatal(err)
		}
	}
	push(shop.ID, catalog.PushOK)          // 1
	down(blog.ID, "connection refused")    // 2
	down(blog.ID, "connection refused")    // same error again: not repeated
	push(blog.ID, catalog.PushUnreachable) // 3
	observe(t, s, blog.ID)                 // recovered: nothing
	down(blog.ID, "connection refused")    // 4: failing again after a recovery
	down(blog.ID, "tls: bad certificate")  // 5: another error
	if _, err := s.RecordStatus(ctx, catalog.AgentStatus{PlatformID: shop.ID, Online: true, Error: ptr("status: internal")}); err != nil {
		t.Fatal(err) // 6: answered, but with an error
	}

	got, err := s.Activity(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	type line struct{ kind, platform, result, message string }
	want := []line{
		{catalog.ActivityAgentError, "Shop", "error", "status: internal"},
		{catalog.ActivityAgentError, "Blog", "unreachable", "tls: bad certificate"},
		{catalog.ActivityAgentError, "Blog", "unreachable", "connection refused"},
		{catalog.ActivityPush, "Blog", catalog.PushUnreachable, ""},
		{catalog.ActivityAgentError, "Blog", "unreachable", "connection refused"},
		{catalog.ActivityPush, "Shop", catalog.PushOK, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("activity = %s, want %d lines", mustJSON(t, got), len(want))
	}
	for i, w := range want {
		g := line{got[i].Kind, got[i].PlatformName, got[i].Result, got[i].Message}
		if g != w {
			t.Errorf("activity[%d] = %+v, want %+v", i, g, w)
		}
		if i > 0 && got[i].At.After(got[i-1].At) {
			t.Errorf("activity[%d] is newer than activity[%d]", i, i-1)
		}
	}

	t.Run("Limit", func(t *testing.T) {
		got, err := s.Activity(ctx, 2)
		if err != nil || len(got) != 2 || got[0].Message != "status: internal" {
			t.Fatalf("Activity(2) = %s, %v", mustJSON(t, got), err)
		}
	})
}
