package main_test

import (
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// killState is a desired state for platform 2 with sync 7 from platform 1 (posts -> posts).
// if_exists is "error", so a batch applied twice would fail and land in the dead letters.
func killState(base string) protocol.State {
	return protocol.State{
		Revision: 1,
		Platform: protocol.PlatformRef{ID: 2, Name: "blog", Domain: "blog.example", AgentURL: base},
		Platforms: []protocol.Platform{
			{ID: 1, Name: "shop", Domain: "shop.example", AgentURL: "https://shop.example:7443"},
			{ID: 2, Name: "blog", Domain: "blog.example", AgentURL: base},
		},
		Syncs: []protocol.Sync{{ID: 7, Status: true, Title: "shop.example (posts) to blog.example (posts)",
			SourcePlatformID: 1, SourceModel: "posts", TargetPlatformID: 2, TargetModel: "posts",
			IfExists: protocol.IfExistsError, SyncAllFields: true, Interval: 60}},
		Peers: []protocol.Peer{},
	}
}

func countRows(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM posts").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKill9DuringApply_AppliesExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds big batches")
	}
	const batches, perBatch = 20, 2500
	total := batches * perBatch
	dsn, db := mustAppDB(t)
	state := t.TempDir()
	addr := freeAddr(t)
	args := []string{"--db", dsn, "--state", state, "--plain-http", "--apply-backoff", "10ms", "--log-level", "debug"}

	p := startAgent(t, false, addr, nil, args...)
	p.enroll(2)
	if r := p.control(http.MethodPut, "/api/state", killState(p.base), ctlKey()); r.status != http.StatusOK {
		t.Fatalf("put state = %d %s", r.status, r.body)
	}
	text := strings.Repeat("ü—日本 ", 20)
	var all []protocol.Batch
	for b := range batches {
		batch := protocol.Batch{BatchID: fmt.Sprintf("batch-%02d", b), SourcePlatformID: 1, SyncID: 7}
		for i := range perBatch {
			n := b*perBatch + i
			ulid := fmt.Sprintf("01HZ%022d", n)
			batch.Changes = append(batch.Changes, protocol.Change{
				Seq: int64(n + 1), EventType: protocol.EventCreated, Model: "posts",
				Key: protocol.Key{Field: "ulid", Value: ulid},
				Data: map[string]any{"id": n + 1000000, "ulid": ulid, "title": fmt.Sprintf("post %d", n),
					"body": text, "views": n},
				OriginPlatformID: 1, ChangedAt: "2026-11-26T12:00:00Z",
			})
		}
		all = append(all, batch)
	}

	// Deliver the batches in order; right after some of the 202s, while the worker applies
	// what just arrived, kill -9 the agent and start it again, as a crash and a supervisor would.
	killAfter := map[int]time.Duration{3: 20 * time.Millisecond, 9: 40 * time.Millisecond, 14: 5 * time.Millisecond}
	midApply := 0
	for b, batch := range all {
		if r := p.deliver(1, 2, batch); r.status != http.StatusAccepted {
			t.Fatalf("deliver %s = %d %s", batch.BatchID, r.status, r.body)
		}
		wait, ok := killAfter[b]
		if !ok {
			continue
		}
		time.Sleep(wait)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.done
		n := countRows(t, db)
		if n%perBatch != 0 {
			t.Fatalf("%d rows after kill -9: a batch was applied in part", n)
		}
		if n < (b+1)*perBatch {
			midApply++
		}
		t.Logf("kill -9 after delivering %d batches: %d of their %d rows applied", b+1, n, (b+1)*perBatch)
		p = startAgent(t, false, addr, nil, args...)
	}
	if midApply == 0 {
		t.Log("every kill came after the worker had caught up; the restart paths were still exercised")
	}

	deadline := time.Now().Add(120 * time.Second)
	for {
		st := p.status()
		s := st.Syncs[0]
		if s.HasErrors || s.Failed != 0 {
			t.Fatalf("sync reports errors: %+v\n%s", s, p.stderr.String())
		}
		if s.Pending == 0 && s.Applied == int64(total) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all applied: %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := countRows(t, db); n != total {
		t.Fatalf("%d rows, want %d", n, total)
	}
	var distinct, badBody, minID int
	if err := db.QueryRow(`SELECT COUNT(DISTINCT ulid), SUM(body != ?), MIN(id) FROM posts`, text).
		Scan(&distinct, &badBody, &minID); err != nil {
		t.Fatal(err)
	}
	if distinct != total || badBody != 0 || minID >= 1000000 {
		t.Fatalf("distinct ulids %d, wrong bodies %d, min id %d (source ids must not be copied)", distinct, badBody, minID)
	}
	for _, n := range []int{0, total / 2, total - 1} {
		var title string
		var views int
		if err := db.QueryRow("SELECT title, views FROM posts WHERE ulid = ?", fmt.Sprintf("01HZ%022d", n)).
			Scan(&title, &views); err != nil || title != fmt.Sprintf("post %d", n) || views != n {
			t.Fatalf("row %d = %q %d, %v", n, title, views, err)
		}
	}
	// Every batch is a duplicate now, also after the restarts.
	if r := p.deliver(1, 2, all[0]); r.status != http.StatusOK || !strings.Contains(string(r.body), "duplicate") {
		t.Fatalf("redelivery = %d %s", r.status, r.body)
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
