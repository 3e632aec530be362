package e2e_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// createMembers creates a small table of people with e-mail addresses.
func (p *platform) createMembers() {
	sqldbtest.MustExec(p.f.t, p.db, map[string]string{
		"sqlite":   `CREATE TABLE members (id INTEGER PRIMARY KEY AUTOINCREMENT, ulid VARCHAR(26) NOT NULL UNIQUE, email VARCHAR(100))`,
		"postgres": `CREATE TABLE members (id BIGSERIAL PRIMARY KEY, ulid VARCHAR(26) NOT NULL UNIQUE, email VARCHAR(100))`,
		"mysql":    `CREATE TABLE members (id BIGINT AUTO_INCREMENT PRIMARY KEY, ulid VARCHAR(26) NOT NULL UNIQUE, email VARCHAR(100))`,
	})
}

// emails returns the members' e-mail addresses by ulid.
func (p *platform) emails() (map[string]any, error) {
	rows, err := p.db.SQL().Query(`SELECT ulid, email FROM members`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]any{}
	for rows.Next() {
		var u string
		var e *string
		if err := rows.Scan(&u, &e); err != nil {
			return nil, err
		}
		if e == nil {
			out[u] = nil
		} else {
			out[u] = *e
		}
	}
	return out, rows.Err()
}

// declarativeConfig is the declarative transformer of TestTransformers.
const declarativeConfig = `{"drop": ["views"], "rename": {"slug": "body"}, "set": {"title": "set on the way"},
	"map_values": {"published": {"values": {"true": false, "false": true}}}}`

// declared applies declarativeConfig to a source row, as the target should receive it
// (views dropped: it stays NULL on the target).
func declared(row map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range row {
		out[k] = v
	}
	out["body"] = row["slug"]
	delete(out, "slug")
	out["slug"] = nil
	out["title"] = "set on the way"
	out["published"] = row["published"] == false
	out["views"] = nil
	return out
}

// TestTransformers runs a declarative transformer (drop, rename, set, map values) and a Go
// transformer (lowercase_email) on the source: what arrives is transformed, in inserts and
// updates alike, and deletes still find their records. A state whose sync names a
// transformer the source's agent does not have is refused with an error naming the sync
// and the transformer, and the state in force stays.
func TestTransformers(t *testing.T) {
	t.Parallel()
	limitParallel(t)
	f := newFleet(t)
	src, dst := f.add("postgres"), f.add("sqlite")
	for _, p := range []*platform{src, dst} {
		p.createPosts("posts")
		p.createMembers()
	}
	name := func(s string) *string { return &s }
	f.sync(1, src, "posts", dst, "posts", func(s *protocol.Sync) {
		s.UseTransformerClass = name("declarative")
		s.TransformerConfig = json.RawMessage(declarativeConfig)
	})
	f.sync(2, src, "members", dst, "members", func(s *protocol.Sync) { s.UseTransformerClass = name("lowercase_email") })
	f.startAll()

	src.insertPosts("posts", 'a', 0, 20, 10)
	src.exec(`UPDATE posts SET title = ?, views = 5, published = NOT published WHERE ulid = ?`, "changed", ulidOf('a', 1))
	src.exec(`DELETE FROM posts WHERE ulid = ?`, ulidOf('a', 2))
	for i, e := range []string{"  Alice@Example.COM ", "BOB@example.org", "carol@example.net"} {
		src.exec(`INSERT INTO members (ulid, email) VALUES (?, ?)`, ulidOf('m', i), e)
	}
	src.exec(`UPDATE members SET email = ? WHERE ulid = ?`, "Carol.New@Example.NET", ulidOf('m', 2))

	waitFor(t, arrival, "transformed posts arrive", func() (bool, string) {
		rows, err := src.rows("posts")
		if err != nil {
			return false, err.Error()
		}
		want := map[string]map[string]any{}
		for k, row := range rows {
			want[k] = declared(row)
		}
		got, err := dst.rows("posts")
		if err != nil {
			return false, err.Error()
		}
		d := diffRows(want, got)
		return d == "" && len(got) == 19, d
	})
	waitFor(t, arrival, "lower-cased e-mail addresses arrive", func() (bool, string) {
		got, err := dst.emails()
		want := map[string]any{ulidOf('m', 0): "alice@example.com", ulidOf('m', 1): "bob@example.org",
			ulidOf('m', 2): "carol.new@example.net"}
		return err == nil && fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got, err)
	})

	// An unknown transformer is refused by the source's agent when the state is pushed.
	before := f.revision
	f.editSync(2, func(s *protocol.Sync) { s.UseTransformerClass = name("no_such_transformer") })
	failed := f.tryPush()
	err := failed[src.name]
	if len(failed) != 1 || !fleet.IsCode(err, protocol.CodeBadRequest) {
		t.Fatalf("push with an unknown transformer: %v, want bad_request from %s only", failed, src.name)
	}
	for _, want := range []string{"sync 2", "no_such_transformer", "not registered", "lowercase_email"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if st := src.status(); st.Revision != before {
		t.Fatalf("source has revision %d in force, want %d", st.Revision, before)
	}
	// A config the transformer refuses, likewise.
	f.editSync(2, func(s *protocol.Sync) {
		s.UseTransformerClass = name("declarative")
		s.TransformerConfig = json.RawMessage(`{"rename": {"email": 5}}`)
	})
	if err := f.tryPush()[src.name]; !fleet.IsCode(err, protocol.CodeBadRequest) || !strings.Contains(err.Error(), "declarative") {
		t.Fatalf("push with a bad declarative config: %v", err)
	}

	// The sync still runs with the transformer in force.
	src.exec(`INSERT INTO members (ulid, email) VALUES (?, ?)`, ulidOf('m', 3), "Dave@Example.com")
	waitFor(t, arrival, "the sync runs on", func() (bool, string) {
		got, err := dst.emails()
		return err == nil && got[ulidOf('m', 3)] == "dave@example.com", fmt.Sprint(got, err)
	})
	waitFor(t, 20*time.Second, "both syncs settle without errors", func() (bool, string) {
		s1, s2 := src.syncStatus(1, "source"), src.syncStatus(2, "source")
		ok := s1.Pending == 0 && s2.Pending == 0 && !s1.HasErrors && !s2.HasErrors
		return ok, statusText(s1) + statusText(s2)
	})
}
