package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// settle is how long a test waits to be sure that something does not arrive.
const settle = 1500 * time.Millisecond

// captured returns the tables that carry capture triggers.
func (p *platform) captured() []string {
	p.f.t.Helper()
	tables, err := p.db.InstalledTriggers(context.Background())
	if err != nil {
		p.f.t.Fatal(err)
	}
	return tables
}

// countOf counts the rows of writer w in table.
func (p *platform) countOf(table string, w byte) int64 {
	return p.tryCount(fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE ulid LIKE '01J%c%%'`, table, w))
}

// waitCount waits until the platform holds n rows of writer w in table.
func waitCount(t *testing.T, p *platform, table string, w byte, n int64) {
	t.Helper()
	waitFor(t, arrival, fmt.Sprintf("%d rows %c in %s.%s", n, w, p.name, table), func() (bool, string) {
		got := p.countOf(table, w)
		return got == n, fmt.Sprint(got)
	})
}

// pushedUncaptured pushes the state and checks that platform p captures no table.
func pushedUncaptured(t *testing.T, f *fleetT, p *platform, why string) {
	t.Helper()
	f.push()
	if got := p.captured(); len(got) != 0 {
		t.Fatalf("captured %v %s", got, why)
	}
}

// noneArrive waits a moment and checks that no row of writer w reached p's table.
func noneArrive(t *testing.T, p *platform, table string, w byte, why string) {
	t.Helper()
	time.Sleep(settle)
	if n := p.countOf(table, w); n != 0 {
		t.Fatalf("%d rows arrived %s", n, why)
	}
}

// TestStateChanges_WithoutRestart changes the desired state and the schema under running
// agents, for each dialect as the source: a new sync captures from then on, a disabled
// one stops capturing (its triggers go) and starts again when re-enabled, a column added
// to the table travels once the triggers are brought up to date, a sync that reads another
// table moves its triggers, and a removed sync leaves no trigger behind.
func TestStateChanges_WithoutRestart(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			limitParallel(t)
			f := newFleet(t)
			a, b := f.add(dialect), f.add("sqlite")
			a.createPosts("posts")
			a.createPosts("articles")
			b.createPosts("posts")
			f.startAll()
			a.insertPosts("posts", 'p', 0, 5, 5)
			if got := a.captured(); len(got) != 0 {
				t.Fatalf("tables captured without a sync: %v", got)
			}

			// A new sync: what is written from now on travels (rows written before it are
			// the initial load's, not capture's).
			f.sync(1, a, "posts", b, "posts", nil)
			f.push()
			if got := a.captured(); !slices.Equal(got, []string{"posts"}) {
				t.Fatalf("captured %v after the new sync", got)
			}
			a.insertPosts("posts", 'n', 0, 10, 10)
			waitCount(t, b, "posts", 'n', 10)
			if n := b.countOf("posts", 'p'); n != 0 {
				t.Fatalf("%d rows written before the sync arrived", n)
			}

			// Disabled: the triggers go, nothing is captured or sent; the status says so.
			f.editSync(1, func(s *protocol.Sync) { s.Status = false })
			pushedUncaptured(t, f, a, "with the sync disabled")
			a.insertPosts("posts", 'd', 0, 10, 10)
			noneArrive(t, b, "posts", 'd', "through a disabled sync")
			if s := a.syncStatus(1, "source"); s.Status || s.Pending != 0 || s.Sent != 10 {
				t.Fatalf("status of the disabled sync: %s", statusText(s))
			}

			// Enabled again: capture resumes (what was written meanwhile is not captured).
			f.editSync(1, func(s *protocol.Sync) { s.Status = true })
			f.push()
			a.insertPosts("posts", 'r', 0, 10, 10)
			waitCount(t, b, "posts", 'r', 10)
			if n := b.countOf("posts", 'd'); n != 0 {
				t.Fatalf("%d rows written while disabled arrived", n)
			}

			// The table changes: a new column, on the target first. Writes carry it once
			// the source's triggers follow the new schema, which needs no restart.
			b.exec(`ALTER TABLE posts ADD COLUMN subtitle VARCHAR(100)`)
			a.exec(`ALTER TABLE posts ADD COLUMN subtitle VARCHAR(100)`)
			altered := time.Now()
			attempt := 0
			waitFor(t, 30*time.Second, "the new column travels", func() (bool, string) {
				attempt++
				v := fmt.Sprintf("subtitle %d", attempt)
				a.exec(`UPDATE posts SET subtitle = ? WHERE ulid = ?`, v, ulidOf('r', 1))
				var got *string
				deadline := time.Now().Add(700 * time.Millisecond)
				for time.Now().Before(deadline) {
					row, _, err := b.db.Get(context.Background(), "posts", "ulid", ulidOf('r', 1))
					if err == nil {
						if s, ok := row["subtitle"].(string); ok {
							got = &s
							if s == v {
								return true, ""
							}
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
				return false, fmt.Sprintf("target subtitle %v, want %q", got, v)
			})
			t.Logf("the new column travelled %v after the ALTER TABLE", time.Since(altered).Round(time.Millisecond))
			a.insertPosts("posts", 's', 0, 5, 5)
			a.exec(`UPDATE posts SET subtitle = title WHERE ulid LIKE '01Js%'`)
			waitFor(t, arrival, "rows with the new column arrive", func() (bool, string) {
				n := b.tryCount(`SELECT COUNT(*) FROM posts WHERE ulid LIKE '01Js%' AND subtitle = title`)
				return n == 5, fmt.Sprint(n)
			})

			// The sync reads another table now: the triggers move with it.
			f.editSync(1, func(s *protocol.Sync) { s.SourceModel = "articles" })
			f.push()
			if got := a.captured(); !slices.Equal(got, []string{"articles"}) {
				t.Fatalf("captured %v after the sync moved to articles", got)
			}
			a.insertPosts("articles", 'x', 0, 5, 5)
			a.insertPosts("posts", 'y', 0, 5, 5)
			waitCount(t, b, "posts", 'x', 5)
			if n := b.countOf("posts", 'y'); n != 0 {
				t.Fatalf("%d rows of the table the sync no longer reads arrived", n)
			}

			// Removed: no trigger is left, nothing travels, the status lists no sync.
			f.removeSync(1)
			pushedUncaptured(t, f, a, "after the sync was removed")
			a.insertPosts("articles", 'z', 0, 5, 5)
			noneArrive(t, b, "posts", 'z', "after the sync was removed")
			if st := a.status(); len(st.Syncs) != 0 {
				t.Fatalf("status lists %+v after the sync was removed", st.Syncs)
			}
			if n := a.tryCount(`SELECT COUNT(*) FROM mooxsync_changes`); n != 0 {
				t.Fatalf("%d rows left in the outbox", n)
			}
		})
	}
}

// TestListenerDisabled_CapturesNothing runs a source agent with SYNC_LISTENER_ENABLED=false:
// it installs no trigger and sends nothing, and once it runs with the listener again, the
// sync works.
func TestListenerDisabled_CapturesNothing(t *testing.T) {
	t.Parallel()
	limitParallel(t)
	f := newFleet(t)
	a, b := f.add("sqlite"), f.add("sqlite")
	a.env = []string{"SYNC_LISTENER_ENABLED=false"}
	a.createPosts("posts")
	b.createPosts("posts")
	f.sync(1, a, "posts", b, "posts", nil)
	f.startAll()
	pushedUncaptured(t, f, a, "with the listener disabled")
	a.insertPosts("posts", 'd', 0, 10, 10)
	noneArrive(t, b, "posts", 'd', "with the listener disabled")

	if code := a.stop(15); code != 0 {
		t.Fatalf("exit code %d on SIGTERM", code)
	}
	a.env = nil
	a.start()
	if got := a.captured(); !slices.Equal(got, []string{"posts"}) {
		t.Fatalf("captured %v with the listener enabled", got)
	}
	a.insertPosts("posts", 'e', 0, 10, 10)
	waitCount(t, b, "posts", 'e', 10)
}
