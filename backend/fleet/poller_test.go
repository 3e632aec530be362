package fleet

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

func TestPoller_PollOnce(t *testing.T) {
	ctx := t.Context()
	tf := newTestFleet(t, 4, true)
	s := newTestSyncer(tf, SyncerOptions{})
	t.Cleanup(s.Close)
	if _, err := s.SyncPlatforms(ctx, SyncOptions{PlatformIDs: []int64{1, 4}}); err != nil {
		t.Fatal(err)
	}
	tf.agent(2).server.Close()
	if err := tf.secrets.Delete(ctx, secrets.PlatformKey(4)); err != nil {
		t.Fatal(err)
	}

	p := NewPoller(tf.catalog, tf.secrets, PollerOptions{Concurrency: 2})
	snap, err := p.PollOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != 10 || len(snap.Agents) != 4 {
		t.Fatalf("snapshot = %+v", snap)
	}
	a1, a2, a3, a4 := snap.Agents[0], snap.Agents[1], snap.Agents[2], snap.Agents[3]
	if !a1.Online || a1.Status == nil || a1.Status.Revision != 10 || len(a1.Status.Syncs) != 4 || a1.Code != "" {
		t.Errorf("agent 1 = %+v, want online with its status at revision 10", a1)
	}
	if a2.Online || a2.Status != nil || a2.Error == "" || a2.Code != "" {
		t.Errorf("agent 2 = %+v, want offline", a2)
	}
	if !a3.Online || a3.Health.Enrolled || a3.Status != nil || a3.Code != string(protocol.CodeNotEnrolled) {
		t.Errorf("agent 3 = %+v, want online, not enrolled", a3)
	}
	if !a4.Online || a4.Status != nil || a4.Code != CodeMissingToken {
		t.Errorf("agent 4 = %+v, want online without a token", a4)
	}
}

func TestPoller_Run(t *testing.T) {
	tf := newTestFleet(t, 2, false)
	var (
		mu    sync.Mutex
		snaps []PollSnapshot
	)
	ctx, cancel := context.WithCancel(t.Context())
	p := NewPoller(tf.catalog, tf.secrets, PollerOptions{
		Interval: 10 * time.Millisecond,
		OnSnapshot: func(s PollSnapshot) {
			mu.Lock()
			defer mu.Unlock()
			snaps = append(snaps, s)
			if len(snaps) == 3 {
				cancel()
			}
		},
	})
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop after ctx was canceled")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(snaps) != 3 {
		t.Fatalf("got %d snapshots, want 3", len(snaps))
	}
	for _, s := range snaps {
		if len(s.Agents) != 2 || !s.Agents[0].Online {
			t.Fatalf("snapshot = %+v", s)
		}
	}
}
