package source_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent/source"
	"github.com/mooxsync/mooxsync/backend/capture/capturetest"
	"github.com/mooxsync/mooxsync/backend/deliver"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

const self = 1

// stateWith is a desired state with sync 7 from self's posts to platform 2, whose agent
// listens nowhere.
func stateWith(enabled bool) protocol.State {
	key := protocol.EncodeKey(protocol.PairKey([]byte("k"), self, 2))
	return protocol.State{Revision: 1, Platform: protocol.PlatformRef{ID: self},
		Syncs: []protocol.Sync{{ID: 7, Status: enabled, SourcePlatformID: self, SourceModel: "posts",
			TargetPlatformID: 2, TargetModel: "posts", SyncAllFields: true}},
		Peers: []protocol.Peer{{PlatformID: 2, URL: "http://127.0.0.1:1", Key: key}}}
}

func mustOpen(t *testing.T, app *sqldb.DB, opts source.Options) *source.Source {
	t.Helper()
	s, err := source.Open(context.Background(), app, capturetest.MustOpenState(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func captured(t *testing.T, app *sqldb.DB) []string {
	t.Helper()
	tables, err := app.InstalledTriggers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

func TestSource_AppliesStatesAndReports(t *testing.T) {
	ctx := context.Background()
	app := sqldbtest.MustOpenSQLite(t)
	sqldbtest.CreatePosts(t, app, "posts")
	s := mustOpen(t, app, source.Options{Deliver: deliverFast()})
	s.Start()
	if err := s.Apply(ctx, stateWith(true), self); err != nil {
		t.Fatal(err)
	}
	if got := captured(t, app); !slices.Equal(got, []string{"posts"}) {
		t.Fatalf("captured %v", got)
	}
	sqldbtest.MustExec(t, app, map[string]string{"": `INSERT INTO posts (ulid) VALUES ('a'), ('b')`})
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ss := st[7]
		if ss.Role == "source" && ss.Pending == 2 && ss.HasErrors && ss.ErrorMessage != nil {
			break // the target is unreachable: both changes wait, the error shows
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", ss)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := s.Apply(ctx, stateWith(false), self); err != nil {
		t.Fatal(err)
	}
	if got := captured(t, app); len(got) != 0 {
		t.Fatalf("captured %v with the sync disabled", got)
	}
	s.Stop()
	s.Stop()
	if err := s.Apply(ctx, stateWith(true), self); err == nil {
		t.Fatal("Apply after Stop succeeded")
	}
}

func TestSource_ListenerDisabled(t *testing.T) {
	ctx := context.Background()
	app := sqldbtest.MustOpenSQLite(t)
	sqldbtest.CreatePosts(t, app, "posts")
	s := mustOpen(t, app, source.Options{})
	if err := s.Apply(ctx, stateWith(true), self); err != nil {
		t.Fatal(err)
	}
	if err := app.InstallTriggers(ctx, "posts"); err != nil { // left by an earlier run
		t.Fatal(err)
	}
	d := mustOpen(t, app, source.Options{ListenerDisabled: true})
	if err := d.Apply(ctx, stateWith(true), self); err != nil {
		t.Fatal(err)
	}
	if got := captured(t, app); len(got) != 0 {
		t.Fatalf("captured %v with the listener disabled", got)
	}
	st, err := d.Status(ctx)
	if err != nil || st[7].Role != "source" {
		t.Fatalf("status %+v, %v", st, err)
	}
}

func deliverFast() deliver.Options {
	return deliver.Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
}
