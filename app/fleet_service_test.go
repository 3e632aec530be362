package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestFleetService_SyncPlatforms(t *testing.T) {
	ta := mustOpenApp(t)
	ctx := context.Background()
	a, b, shop := ta.mustShopAndBlog(t)
	down := ta.mustPlatform(t, "Down", "http://127.0.0.1:1")
	if _, err := ta.Syncs.Save(SyncInput{SourcePlatformID: a.ID, SourceModel: "posts", TargetPlatformID: b.ID,
		TargetModel: "articles", SyncAllFields: true, Interval: 60, Status: true}); err != nil {
		t.Fatal(err)
	}

	rep, err := ta.Fleet.SyncPlatforms()
	if err != nil {
		t.Fatal(err)
	}
	rev, _ := ta.catalog.Revision(ctx)
	if rep.Revision != rev || len(rep.Results) != 3 {
		t.Fatalf("report %+v, want 3 results at revision %d", rep, rev)
	}
	byID := map[int64]PushResult{}
	for _, r := range rep.Results {
		byID[r.PlatformID] = r
	}
	if r := byID[a.ID]; r.Result != ResultOK || r.Code != nil || r.Message != nil || r.Name != "Shop" {
		t.Errorf("shop: %+v", r)
	}
	if r := byID[down.ID]; r.Result != ResultUnreachable || r.Message == nil {
		t.Errorf("down: %+v", r)
	}

	t.Run("events", func(t *testing.T) {
		done := ta.events.named(EventSyncPlatformsDone)
		if len(done) != 1 {
			t.Fatalf("%d done events", len(done))
		}
		if got := done[0].(SyncReport); got.Revision != rep.Revision || len(got.Results) != 3 {
			t.Errorf("done event %+v", got)
		}
		progress := ta.events.named(EventSyncPlatformsProgress)
		if len(progress) == 0 {
			t.Fatal("no progress events")
		}
		last := progress[len(progress)-1].(Progress)
		if last.Phase != PhaseDone || last.Done != 3 || last.Total != 3 || last.Result == nil || last.Name == "" {
			t.Errorf("last progress %+v, want the third agent done", last)
		}
		for _, p := range progress {
			switch p.(Progress).Phase {
			case PhaseEnroll, PhasePush, PhaseDone:
			default:
				t.Errorf("progress with phase %q", p.(Progress).Phase)
			}
		}
	})

	t.Run("catalog records", func(t *testing.T) {
		ps, err := ta.Platforms.List()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			switch p.ID {
			case a.ID, b.ID:
				if p.AckedRevision != rev || p.EnrolledAt == nil || p.TLSFingerprint == nil {
					t.Errorf("platform %s after push: %+v", p.Name, p)
				}
			case down.ID:
				if p.AckedRevision != 0 || p.EnrolledAt != nil {
					t.Errorf("unreachable platform marked: %+v", p)
				}
			}
		}
		acts, err := ta.Activity.List(10)
		if err != nil || len(acts) != 3 {
			t.Fatalf("activity %+v, %v", acts, err)
		}
		ids := map[int64]bool{}
		for _, e := range acts {
			if e.Kind != "push" || e.PlatformName == "" || ids[e.ID] {
				t.Errorf("activity entry %+v", e)
			}
			ids[e.ID] = true
		}
		again, _ := ta.Activity.List(10)
		if again[0].ID != acts[0].ID {
			t.Error("activity ids change from one List to the next")
		}
	})

	t.Run("second press is idempotent", func(t *testing.T) {
		rep2, err := ta.Fleet.SyncPlatforms()
		if err != nil || rep2.Revision != rep.Revision {
			t.Fatalf("second press %+v, %v", rep2, err)
		}
	})

	t.Run("without sync token", func(t *testing.T) {
		bare := mustOpenApp(t)
		bare.mustPlatform(t, "Shop", shop.URL)
		_, err := bare.Fleet.SyncPlatforms()
		appErr(t, err, CodeMissingToken, "")
		if n := len(bare.events.named(EventSyncPlatformsDone)); n != 0 {
			t.Errorf("%d done events for a run that could not start", n)
		}
	})
}

func TestFleetService_Cancel(t *testing.T) {
	ta := mustOpenApp(t)
	ta.mustSyncToken(t)
	reached := make(chan struct{}, 1)
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case reached <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	t.Cleanup(stuck.Close)
	ta.mustPlatform(t, "Stuck", stuck.URL)

	type outcome struct {
		rep SyncReport
		err error
	}
	res := make(chan outcome, 1)
	go func() {
		rep, err := ta.Fleet.SyncPlatforms()
		res <- outcome{rep, err}
	}()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent was never contacted")
	}
	if err := ta.Fleet.CancelSyncPlatforms(); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-res:
		if o.err != nil {
			t.Fatalf("canceled run: %v", o.err)
		}
		if len(o.rep.Results) != 1 || o.rep.Results[0].Result != ResultFailed ||
			o.rep.Results[0].Code == nil || *o.rep.Results[0].Code != CodeCanceled {
			t.Fatalf("canceled run report %+v", o.rep)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SyncPlatforms did not stop")
	}
}

func TestFleetService_PollerAndOverview(t *testing.T) {
	ta := mustOpenApp(t)
	a, b, _ := ta.mustShopAndBlog(t)
	down := ta.mustPlatform(t, "Down", "http://127.0.0.1:1")
	if _, err := ta.Syncs.Save(SyncInput{SourcePlatformID: a.ID, SourceModel: "posts", TargetPlatformID: b.ID,
		TargetModel: "articles", SyncAllFields: true, Interval: 60, Status: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.Fleet.SyncPlatforms(); err != nil {
		t.Fatal(err)
	}

	views, err := ta.Fleet.Overview()
	if err != nil || len(views) != 3 {
		t.Fatalf("Overview before any poll = %+v, %v", views, err)
	}
	for _, v := range views {
		if v.Online || v.LastSeen != nil || v.Syncs == nil {
			t.Errorf("never polled, yet %+v", v)
		}
	}

	// A second App over the same catalog, with the poller on, as after a restart.
	polled := mustOpenApp(t, func(o *Options) {
		o.CatalogPath = ta.catalog.Path()
		o.Secrets = ta.secrets
		o.PollInterval = 20 * time.Millisecond
	})
	data := polled.events.waitFor(t, EventFleetStatus)
	views = data.([]AgentView)
	if len(views) != 3 {
		t.Fatalf("fleet:status with %d agents", len(views))
	}
	rev, _ := polled.catalog.Revision(context.Background())
	for _, v := range views {
		switch v.PlatformID {
		case a.ID:
			if !v.Online || !v.Enrolled || v.Revision != rev || v.DesiredRevision != rev || v.LastSeen == nil ||
				v.Version == "" || v.Error != nil || len(v.Syncs) != 1 || v.Syncs[0].Role != "source" {
				t.Errorf("shop view %+v", v)
			}
		case down.ID:
			if v.Online || v.Error == nil || v.LastSeen != nil {
				t.Errorf("down view %+v", v)
			}
		}
	}
	overview, err := polled.Fleet.Overview()
	if err != nil || len(overview) != 3 {
		t.Fatalf("Overview = %+v, %v", overview, err)
	}
	acts, err := polled.Activity.List(0)
	if err != nil {
		t.Fatal(err)
	}
	var agentErrors int
	for _, e := range acts {
		if e.Kind == "agent_error" && e.PlatformID == down.ID {
			agentErrors++
		}
	}
	if agentErrors != 1 {
		t.Errorf("%d agent_error entries for the unreachable agent, want 1", agentErrors)
	}
}

func TestThrottle(t *testing.T) {
	var (
		mu  sync.Mutex
		got []int
	)
	th := newThrottle(50*time.Millisecond, func(v int) {
		mu.Lock()
		got = append(got, v)
		mu.Unlock()
	})
	for i := 1; i <= 100; i++ {
		th.Send(i)
	}
	th.Close()
	th.Send(101)
	mu.Lock()
	defer mu.Unlock()
	if len(got) > 3 || got[0] != 1 || got[len(got)-1] != 100 {
		t.Fatalf("emitted %v, want the first and the last of a burst", got)
	}

	t.Run("the last value comes after the interval", func(t *testing.T) {
		out := make(chan int, 10)
		th := newThrottle(20*time.Millisecond, func(v int) { out <- v })
		defer th.Close()
		th.Send(1)
		th.Send(2)
		th.Send(3)
		if v := <-out; v != 1 {
			t.Fatalf("first %d", v)
		}
		select {
		case v := <-out:
			if v != 3 {
				t.Fatalf("then %d, want 3", v)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("the pending value was never emitted")
		}
	})
}
