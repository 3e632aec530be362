package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// relate gives the post with the ulid to the platforms, with plain SQL into model_platform
// (model_type the table, model_id the post's local id), as an application would.
func (p *platform) relate(ulid string, to ...*platform) {
	p.f.t.Helper()
	p.tx(func(exec func(string, ...any)) {
		for _, q := range to {
			exec(`INSERT INTO model_platform (model_type, model_id, platform_id, created_at, updated_at)
				VALUES ('posts', (SELECT id FROM posts WHERE ulid = ?), ?, ?, ?)`, ulid, q.id, base, base)
		}
	})
}

// unrelate takes the post with the ulid from a platform with plain SQL.
func (p *platform) unrelate(ulid string, from *platform) {
	p.f.t.Helper()
	// MySQL cannot name the table it deletes from in a subquery: read the id first.
	id := p.count(`SELECT id FROM posts WHERE ulid = ?`, ulid)
	if n := p.exec(`DELETE FROM model_platform WHERE model_type = 'posts' AND model_id = ? AND platform_id = ?`,
		id, from.id); n != 1 {
		p.f.t.Fatalf("deleted %d relations of %s to %s, want 1", n, ulid, from.name)
	}
}

// ulids returns the sorted ulids of a platform's posts.
func (p *platform) ulids() ([]string, error) {
	rows, err := p.rows("posts")
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rows))
	for k := range rows {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// waitPosts waits until p holds exactly the posts of src with the given ulids (rows
// identical to the source's, but the local id).
func waitPosts(t *testing.T, src, p *platform, ulids ...string) {
	t.Helper()
	waitFor(t, arrival, fmt.Sprintf("%s holds posts %v", p.name, ulids), func() (bool, string) {
		all, err := src.rows("posts")
		if err != nil {
			return false, err.Error()
		}
		want := map[string]map[string]any{}
		for _, u := range ulids {
			want[u] = all[u]
		}
		got, err := p.rows("posts")
		if err != nil {
			return false, err.Error()
		}
		if d := diffRows(want, got); d != "" {
			return false, d
		}
		return true, ""
	})
}

// relations reads the relations of a post through the agent's API.
func (p *platform) relations(ulid string) ([]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rel, err := p.client.Relations(ctx, "posts", ulid)
	return rel.PlatformIDs, err
}

// putRelations sets the relations of a post through the agent's API.
func (p *platform) putRelations(ulid string, to ...*platform) {
	p.f.t.Helper()
	ids := []int64{}
	for _, q := range to {
		ids = append(ids, q.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rel, err := p.client.PutRelations(ctx, "posts", ulid, protocol.Relations{PlatformIDs: ids})
	slices.Sort(ids)
	if err != nil || !slices.Equal(rel.PlatformIDs, ids) {
		p.f.t.Fatalf("put relations of %s to %v: %v, %v", ulid, ids, rel.PlatformIDs, err)
	}
}

// TestRelations_ThreePlatforms syncs a source's posts to two targets by platform
// relations, for each dialect as the source: a post reaches only the targets it relates
// to; a post that relates to none goes nowhere; relations set with plain SQL in
// model_platform and through PUT /api/relations both take effect at once (a gained target
// gets the post, a lost one deletes it, the other target keeps it); and deletes on the
// source reach the targets the post was on.
func TestRelations_ThreePlatforms(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			limitParallel(t)
			f := newFleet(t)
			a, b, c := f.add(dialect), f.add("sqlite"), f.add("sqlite")
			for _, p := range []*platform{a, b, c} {
				p.createPosts("posts")
			}
			byRelations := func(s *protocol.Sync) { s.UsePlatformRelations = true }
			f.sync(1, a, "posts", b, "posts", byRelations)
			f.sync(2, a, "posts", c, "posts", byRelations)
			f.startAll()
			if got := a.captured(); !slices.Equal(got, []string{"model_platform", "posts"}) {
				t.Fatalf("captured tables %v, want model_platform and posts", got)
			}

			// Posts 0-5; 0 relates to b, 1 to c, 2 to both, 3-5 to none (written by SQL in
			// the posts' own transaction for 0-2, afterwards for 2's second platform).
			a.insertPosts("posts", 'a', 0, 6, 6)
			u := func(i int) string { return ulidOf('a', i) }
			a.relate(u(0), b)
			a.relate(u(1), c)
			a.tx(func(exec func(string, ...any)) {
				exec(`INSERT INTO model_platform (model_type, model_id, platform_id) VALUES ('posts', (SELECT id FROM posts WHERE ulid = ?), ?)`,
					u(2), b.id)
			})
			a.relate(u(2), c)
			waitPosts(t, a, b, u(0), u(2))
			waitPosts(t, a, c, u(1), u(2))

			// Changes follow the relations; an unrelated post's changes go nowhere.
			a.exec(`UPDATE posts SET title = ? WHERE ulid IN (?, ?, ?)`, "edited", u(0), u(2), u(3))
			waitPosts(t, a, b, u(0), u(2))
			waitPosts(t, a, c, u(1), u(2))

			// The API sees the relations written by SQL.
			for i, want := range [][]int64{{b.id}, {c.id}, {b.id, c.id}, {}} {
				got, err := a.relations(u(i))
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("relations of post %d = %v, %v; want %v", i, got, err, want)
				}
			}

			// Relations by the API: post 3 goes to both, post 1 moves from c to b.
			a.putRelations(u(3), b, c)
			a.putRelations(u(1), b)
			waitPosts(t, a, b, u(0), u(1), u(2), u(3))
			waitPosts(t, a, c, u(2), u(3))

			// Removing a relation by SQL deletes the post on that target only.
			a.unrelate(u(2), c)
			waitPosts(t, a, c, u(3))
			waitPosts(t, a, b, u(0), u(1), u(2), u(3))

			// Removing every relation by the API deletes it everywhere it was.
			a.putRelations(u(3))
			waitPosts(t, a, b, u(0), u(1), u(2))
			waitPosts(t, a, c)

			// Deletes on the source reach the targets the post was on.
			a.exec(`DELETE FROM posts WHERE ulid IN (?, ?)`, u(0), u(4))
			waitPosts(t, a, b, u(1), u(2))
			time.Sleep(settle)
			if got, err := c.ulids(); err != nil || len(got) != 0 {
				t.Fatalf("c holds %v, %v; want nothing", got, err)
			}

			// Errors: an unknown record, a platform the agent does not know.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := a.relations("no-such-ulid"); !fleet.IsCode(err, protocol.CodeNotFound) {
				t.Fatalf("relations of an unknown post: %v, want not_found", err)
			}
			_, err := a.client.PutRelations(ctx, "posts", u(1), protocol.Relations{PlatformIDs: []int64{99}})
			if !fleet.IsCode(err, protocol.CodeBadRequest) || !strings.Contains(err.Error(), "99") {
				t.Fatalf("relations to platform 99: %v, want bad_request", err)
			}
			if _, err := a.client.Relations(ctx, "no_such_table", "x"); !fleet.IsCode(err, protocol.CodeUnknownModel) {
				t.Fatalf("relations of an unknown model: %v, want unknown_model", err)
			}

			waitFor(t, 20*time.Second, "both syncs settle without errors", func() (bool, string) {
				s1, s2 := a.syncStatus(1, "source"), a.syncStatus(2, "source")
				t1, t2 := b.syncStatus(1, "target"), c.syncStatus(2, "target")
				ok := s1.Pending == 0 && s2.Pending == 0 && t1.Applied == s1.Sent && t2.Applied == s2.Sent &&
					!s1.HasErrors && !s2.HasErrors && !t1.HasErrors && !t2.HasErrors
				return ok, fmt.Sprint(statusText(s1), statusText(t1), statusText(s2), statusText(t2))
			})
		})
	}
}
