package e2e_test

import (
	"fmt"
	"testing"
	"time"
)

// quietFor is how long a converged pair must stay still to count as quiet.
const quietFor = 3 * time.Second

// counters is everything that moves when changes travel: the status counters of every
// sync on every agent, and the outbox of every application database.
func counters(ps ...*platform) string {
	s := ""
	for _, p := range ps {
		for _, ss := range p.status().Syncs {
			s += fmt.Sprintf("%s %d/%s sent=%d applied=%d pending=%d; ", p.name, ss.ID, ss.Role, ss.Sent, ss.Applied,
				ss.Pending)
		}
		s += fmt.Sprintf("%s outbox=%d; ", p.name, p.tryCount(`SELECT COUNT(*) FROM mooxsync_changes`))
	}
	return s
}

// TestTwoWay_ConvergesAndStaysQuiet runs two syncs in opposite directions on the same
// table: writes on either side arrive on the other, and once both agree nothing moves any
// more (a change applied from a peer is never sent back to it).
func TestTwoWay_ConvergesAndStaysQuiet(t *testing.T) {
	t.Parallel()
	limitParallel(t)
	f := newFleet(t)
	a, b := f.add("sqlite"), f.add("postgres")
	a.createPosts("posts")
	b.createPosts("posts")
	f.sync(1, a, "posts", b, "posts", nil)
	f.sync(2, b, "posts", a, "posts", nil)
	f.startAll()

	a.insertPosts("posts", 'a', 0, 40, 10)
	b.insertPosts("posts", 'b', 0, 40, 10)
	waitSame(t, arrival, a, "posts", b)
	if n := a.count(`SELECT COUNT(*) FROM posts`); n != 80 {
		t.Fatalf("%d rows after the first round, want 80", n)
	}
	// Each side changes and deletes rows that came from the other.
	b.exec(`UPDATE posts SET title = ? WHERE ulid = ?`, "changed on b", ulidOf('a', 1))
	b.exec(`DELETE FROM posts WHERE ulid = ?`, ulidOf('a', 2))
	waitSame(t, arrival, b, "posts", a)
	a.exec(`UPDATE posts SET views = 7 WHERE ulid = ?`, ulidOf('b', 1))
	a.exec(`DELETE FROM posts WHERE ulid = ?`, ulidOf('b', 2))
	waitSame(t, arrival, a, "posts", b)

	// Converged: everything acknowledged and applied. From now on nothing may move.
	waitFor(t, 20*time.Second, "both syncs settle", func() (bool, string) {
		s1, s2 := a.syncStatus(1, "source"), b.syncStatus(2, "source")
		t1, t2 := b.syncStatus(1, "target"), a.syncStatus(2, "target")
		ok := s1.Pending == 0 && s2.Pending == 0 && t1.Pending == 0 && t2.Pending == 0 &&
			t1.Applied == s1.Sent && t2.Applied == s2.Sent
		return ok, fmt.Sprint(statusText(s1), statusText(t1), statusText(s2), statusText(t2))
	})
	before := counters(a, b)
	time.Sleep(quietFor)
	if after := counters(a, b); after != before {
		t.Fatalf("not quiet after converging:\nbefore %s\nafter  %s", before, after)
	}
	// Each direction sent exactly the local writes of its source: 40 inserts + 1 update +
	// 1 delete each, none of the changes it had received.
	if s := a.syncStatus(1, "source"); s.Sent != 42 {
		t.Errorf("a -> b sent %d changes, want 42 (echoes sent back?)", s.Sent)
	}
	if s := b.syncStatus(2, "source"); s.Sent != 42 {
		t.Errorf("b -> a sent %d changes, want 42 (echoes sent back?)", s.Sent)
	}
}

// TestChain_Propagates runs A -> B -> C over three dialects: A's changes reach C through B
// (keeping A as their origin), B's own changes reach C, and nothing flows back.
func TestChain_Propagates(t *testing.T) {
	t.Parallel()
	limitParallel(t)
	f := newFleet(t)
	a, b, c := f.add("mysql"), f.add("sqlite"), f.add("postgres")
	for _, p := range []*platform{a, b, c} {
		p.createPosts("posts")
	}
	f.sync(1, a, "posts", b, "posts", nil)
	f.sync(2, b, "posts", c, "posts", nil)
	f.startAll()

	a.insertPosts("posts", 'a', 0, 50, 25)
	a.exec(`UPDATE posts SET title = ? WHERE ulid = ?`, "from a", ulidOf('a', 3))
	a.exec(`DELETE FROM posts WHERE ulid = ?`, ulidOf('a', 4))
	waitSame(t, arrival, a, "posts", b, c)

	b.insertPosts("posts", 'b', 0, 10, 10)
	b.exec(`UPDATE posts SET title = ? WHERE ulid = ?`, "from b", ulidOf('a', 5))
	waitSame(t, arrival, b, "posts", c)
	if n := a.count(`SELECT COUNT(*) FROM posts WHERE ulid LIKE '01Jb%'`); n != 0 {
		t.Fatalf("b's rows flowed back to a: %d", n)
	}
	waitFor(t, 20*time.Second, "the chain settles", func() (bool, string) {
		s1, s2 := a.syncStatus(1, "source"), b.syncStatus(2, "source")
		t1, t2 := b.syncStatus(1, "target"), c.syncStatus(2, "target")
		ok := s1.Pending == 0 && s2.Pending == 0 && t1.Applied == s1.Sent && t2.Applied == s2.Sent &&
			s1.Sent == 52 && s2.Sent == 52+11
		return ok, fmt.Sprint(statusText(s1), statusText(t1), statusText(s2), statusText(t2))
	})
}
