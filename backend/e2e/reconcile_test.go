package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
)

// reconcileRuns returns the runs of a sync, newest first.
func (p *platform) reconcileRuns(id int64) []agent.ReconcileRun {
	p.f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out agent.ReconcileRuns
	if err := p.client.Call(ctx, http.MethodGet, fmt.Sprintf("/api/syncs/%d/reconcile", id), nil, &out); err != nil {
		p.f.t.Fatalf("reconcile runs of %s: %v", p.name, err)
	}
	return out.Runs
}

// reconcile starts a run of sync id (a dry run or not) and waits until it is over.
func (p *platform) reconcile(id int64, dryRun bool) agent.ReconcileRun {
	t := p.f.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var started struct {
		RunID string `json:"run_id"`
	}
	if err := p.client.Call(ctx, http.MethodPost, fmt.Sprintf("/api/syncs/%d/reconcile?dry_run=%t", id, dryRun), nil, &started); err != nil {
		t.Fatalf("reconcile sync %d on %s: %v", id, p.name, err)
	}
	return p.waitRun(id, started.RunID)
}

// waitRun waits for a run to end and returns it; a failed run fails the test.
func (p *platform) waitRun(id int64, runID string) agent.ReconcileRun {
	t := p.f.t
	t.Helper()
	var run agent.ReconcileRun
	waitFor(t, arrival, "reconciliation "+runID, func() (bool, string) {
		for _, r := range p.reconcileRuns(id) {
			if r.RunID == runID || runID == "" {
				run = r
				return r.State != "running", r.State
			}
		}
		return false, "no such run"
	})
	if run.State != "done" {
		t.Fatalf("run %s %s: %v\n%s", run.RunID, run.State, run.Errors, p.logTail(30))
	}
	return run
}

// sourceRows returns p's posts without the target's own rows (writer o).
func withoutOwn(rows map[string]map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for k, v := range rows {
		if !strings.HasPrefix(k, "01Jo") {
			out[k] = v
		}
	}
	return out
}

// TestReconcile_InitialLoadDriftAndDryRun runs real agents with their default settings: a
// new sync first loads the rows the source has already; drift of each kind
// (a row edited and one deleted on the target, rows inserted and one deleted on the source
// without capture) is reported by a dry run, which changes nothing, and repaired by a run;
// the target's own rows are never touched.
func TestReconcile_InitialLoadDriftAndDryRun(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			limitParallel(t)
			f := newFleet(t)
			src, dst := f.add(dialect), f.add(dialect)
			src.createPosts("posts")
			dst.createPosts("posts")
			src.insertPosts("posts", 'e', 0, 60, 25)
			dst.insertPosts("posts", 'o', 0, 5, 5)
			src.env = []string{"SYNC_INITIAL_LOAD_ENABLED=true"} // the agent's default
			f.sync(1, src, "posts", dst, "posts", nil)
			f.startAll()

			// Initial load, with live changes flowing meanwhile.
			src.insertPosts("posts", 'l', 0, 10, 5)
			waitCount(t, dst, "posts", 'e', 60)
			waitCount(t, dst, "posts", 'l', 10)
			initial := src.waitRun(1, "")
			if initial.Trigger != "initial" || initial.Progress.Done != initial.Progress.Total || initial.Progress.Total < 60 {
				t.Fatalf("initial load: %+v", initial)
			}
			var st struct {
				Syncs []struct {
					ID        int64               `json:"id"`
					Role      string              `json:"role"`
					Reconcile *agent.ReconcileRun `json:"reconcile"`
				} `json:"syncs"`
			}
			if err := src.client.Call(context.Background(), http.MethodGet, "/api/status", nil, &st); err != nil {
				t.Fatal(err)
			}
			if len(st.Syncs) != 1 || st.Syncs[0].Reconcile == nil || st.Syncs[0].Reconcile.RunID != initial.RunID {
				b, _ := json.Marshal(st)
				t.Fatalf("status has no last run: %s", b)
			}
			waitFor(t, arrival, "the initial load arrives", func() (bool, string) {
				d := diffRows(must(src.rows("posts")), withoutOwn(must(dst.rows("posts"))))
				return d == "", d
			})
			if got := withoutOwn(must(dst.rows("posts"))); len(got) != 70 {
				t.Fatalf("%d synced rows on the target, want 70", len(got))
			}

			// Drift.
			dst.exec(`UPDATE posts SET title = 'edited on the target' WHERE ulid = ?`, ulidOf('e', 1))
			dst.exec(`DELETE FROM posts WHERE ulid = ?`, ulidOf('e', 2))
			src.tx(func(exec func(string, ...any)) {
				for i := 0; i < 3; i++ {
					exec(insertPostSQL("posts"), postValues('h', i)...)
				}
				exec(`DELETE FROM posts WHERE ulid = ?`, ulidOf('e', 3))
				exec(`DELETE FROM mooxsync_changes`) // as if the triggers were absent
			})
			before := must(dst.rows("posts"))

			dry := src.reconcile(1, true)
			if !dry.DryRun || dry.Inserted != 4 || dry.Updated != 1 || dry.Deleted != 1 || dry.SkippedUnowned != 5 {
				t.Fatalf("dry run: %+v", dry.Report)
			}
			time.Sleep(settle)
			if d := diffRows(before, must(dst.rows("posts"))); d != "" {
				t.Fatalf("the dry run changed the target: %s", d)
			}

			run := src.reconcile(1, false)
			if run.Inserted != 4 || run.Updated != 1 || run.Deleted != 1 || run.SkippedUnowned != 5 || run.Bytes == 0 {
				t.Fatalf("run: %+v", run.Report)
			}
			waitFor(t, arrival, "the drift repaired", func() (bool, string) {
				d := diffRows(must(src.rows("posts")), withoutOwn(must(dst.rows("posts"))))
				return d == "", d
			})
			if n := dst.countOf("posts", 'o'); n != 5 {
				t.Fatalf("%d of the target's own 5 rows left", n)
			}
			again := src.reconcile(1, false)
			if again.Repaired != 0 || again.Deleted != 0 {
				t.Fatalf("a second run repairs again: %+v", again.Report)
			}
			if runs := src.reconcileRuns(1); len(runs) != 4 {
				t.Fatalf("%d runs in the history, want 4", len(runs))
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
