package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/handler/handlertest"
)

// wpUser is a WordPress user as the tests compare it: the wp_users columns that travel
// (all but the local ID) and the meta rows.
type wpUser struct {
	Row  map[string]any
	Meta map[string]any
}

// wpUser reads a user by login; found is false when there is none.
func (p *platform) wpUser(login string) (u wpUser, found bool, err error) {
	row, found, err := p.db.Get(context.Background(), "wp_users", "user_login", login)
	if err != nil || !found {
		return wpUser{}, found, err
	}
	delete(row, "ID")
	if n := p.tryCount(`SELECT COUNT(*) FROM wp_users WHERE user_login = ?`, login); n != 1 {
		return wpUser{}, true, fmt.Errorf("%d users %s", n, login)
	}
	return wpUser{Row: row, Meta: handlertest.Meta(p.f.t, p.db, "wp_", login)}, true, nil
}

// addWPUser inserts a user and its meta rows in one transaction, as wp_insert_user does.
func (p *platform) addWPUser(login, email string, meta map[string]string) {
	p.f.t.Helper()
	p.tx(func(exec func(string, ...any)) {
		exec(`INSERT INTO wp_users (user_login, user_pass, user_nicename, user_email, user_registered, display_name)
			VALUES (?, ?, ?, ?, ?, ?)`, login, "$P$Bhash-of-"+login, login, email, "2026-11-26 12:00:00", "User "+login)
		for k, v := range meta {
			exec(`INSERT INTO wp_usermeta (user_id, meta_key, meta_value)
				VALUES ((SELECT `+p.db.Dialect().QuoteIdent("ID")+` FROM wp_users WHERE user_login = ?), ?, ?)`, login, k, v)
		}
	})
}

// wpUserID returns a user's local ID.
func (p *platform) wpUserID(login string) int64 {
	return p.count(`SELECT `+p.db.Dialect().QuoteIdent("ID")+` FROM wp_users WHERE user_login = ?`, login)
}

// waitWPUser waits until the target holds the user as wanted: its wp_users row as on the
// source (but the local ID), and exactly the meta rows in meta. A nil meta waits for the
// user to be gone, meta rows and all.
func waitWPUser(t *testing.T, src, dst *platform, login string, meta map[string]any) {
	t.Helper()
	waitFor(t, arrival, fmt.Sprintf("user %s on %s", login, dst.name), func() (bool, string) {
		got, found, err := dst.wpUser(login)
		if err != nil {
			return false, err.Error()
		}
		if meta == nil {
			orphans := dst.tryCount(`SELECT COUNT(*) FROM wp_usermeta WHERE user_id NOT IN (SELECT ` +
				dst.db.Dialect().QuoteIdent("ID") + ` FROM wp_users)`)
			return !found && orphans == 0, fmt.Sprintf("found=%v, %d orphan meta rows", found, orphans)
		}
		want, ok, err := src.wpUser(login)
		if err != nil || !ok {
			return false, fmt.Sprintf("source: %v %v", ok, err)
		}
		if !found {
			return false, "not there"
		}
		if d := diffRows(map[string]map[string]any{login: want.Row}, map[string]map[string]any{login: got.Row}); d != "" {
			return false, d
		}
		if !reflect.DeepEqual(got.Meta, meta) {
			return false, fmt.Sprintf("meta %v, want %v", got.Meta, meta)
		}
		return true, ""
	})
}

// TestMetaHandler_WordPressUsers syncs WordPress users between two sites with the real
// wp_users/wp_usermeta schema: the source agent's transformer_bindings give wp_users the
// wp_user transformer (which adds the user's meta rows), the target agent's sync_bindings
// the wp_user handler (which writes them as meta rows of the target's own user id).
// Records are matched by user_login (unique_identifier_fields on both agents). A new user
// arrives with its meta, but never its capabilities; a change of a meta row alone
// re-delivers the user; a delete removes the user and its meta rows.
func TestMetaHandler_WordPressUsers(t *testing.T) {
	for _, pair := range []struct{ from, to string }{{"mysql", "mysql"}, {"sqlite", "postgres"}} {
		t.Run(pair.from+"_to_"+pair.to, func(t *testing.T) {
			t.Parallel()
			limitParallel(t)
			f := newFleet(t)
			src, dst := f.add(pair.from), f.add(pair.to)
			ids := []string{"user_login", "ulid", "uuid", "slug", "name", "title"}
			src.config = map[string]any{"unique_identifier_fields": ids,
				"transformer_bindings": map[string]any{"wp_users": "wp_user"}}
			dst.config = map[string]any{"unique_identifier_fields": ids,
				"sync_bindings": map[string]any{"wp_users": "wp_user"}}
			for _, p := range []*platform{src, dst} {
				handlertest.CreateWordPressUsers(t, p.db, "wp_")
			}
			// The target's own user, whose meta rows the sync must not touch.
			dst.addWPUser("admin", "admin@blog.example", map[string]string{"nickname": "admin", "wp_capabilities": `a:1:{s:13:"administrator";b:1;}`})
			f.sync(1, src, "wp_users", dst, "wp_users", nil)
			f.startAll()

			// A new user with meta rows, capabilities among them.
			meta := map[string]string{"nickname": "alice", "first_name": "Alice", "last_name": "Liddell",
				"locale": "de_DE", "wp_capabilities": `a:1:{s:10:"subscriber";b:1;}`, "wp_user_level": "0"}
			src.addWPUser("alice", "alice@shop.example", meta)
			src.addWPUser("bob", "bob@shop.example", map[string]string{"nickname": "bob"})
			aliceMeta := map[string]any{"nickname": "alice", "first_name": "Alice", "last_name": "Liddell", "locale": "de_DE"}
			waitWPUser(t, src, dst, "alice", aliceMeta)
			waitWPUser(t, src, dst, "bob", map[string]any{"nickname": "bob"})

			// A meta row changes, one is added, the user row changes.
			id := src.wpUserID("alice")
			src.exec(`UPDATE wp_usermeta SET meta_value = ? WHERE user_id = ? AND meta_key = 'first_name'`, "Alicia", id)
			src.exec(`INSERT INTO wp_usermeta (user_id, meta_key, meta_value) VALUES (?, 'description', ?)`, id, "Down the rabbit hole")
			aliceMeta = maps.Clone(aliceMeta)
			aliceMeta["first_name"], aliceMeta["description"] = "Alicia", "Down the rabbit hole"
			waitWPUser(t, src, dst, "alice", aliceMeta)
			src.exec(`UPDATE wp_users SET user_email = ?, display_name = ? WHERE user_login = ?`, "alice@new.example", "Alicia L.", "alice")
			waitWPUser(t, src, dst, "alice", aliceMeta)

			// Deleted as wp_delete_user does: the meta rows, then the user.
			src.tx(func(exec func(string, ...any)) {
				exec(`DELETE FROM wp_usermeta WHERE user_id = ?`, id)
				exec(`DELETE FROM wp_users WHERE `+src.db.Dialect().QuoteIdent("ID")+` = ?`, id)
			})
			waitWPUser(t, src, dst, "alice", nil)
			waitWPUser(t, src, dst, "bob", map[string]any{"nickname": "bob"})
			if got := handlertest.Meta(t, dst.db, "wp_", "admin"); len(got) != 2 {
				t.Fatalf("the target's own user has meta %v", got)
			}
			if n := dst.count(`SELECT COUNT(*) FROM wp_users`); n != 2 {
				t.Fatalf("%d users on the target, want admin and bob", n)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			models, err := dst.client.Capabilities(ctx)
			if err != nil || !slices.Contains(models.Handlers, "wp_user") || !slices.Contains(models.Transformers, "wp_user") {
				t.Fatalf("capabilities = %+v, %v", models, err)
			}
			waitFor(t, 20*time.Second, "the sync settles without errors", func() (bool, string) {
				s, d := src.syncStatus(1, "source"), dst.syncStatus(1, "target")
				return s.Pending == 0 && d.Applied == s.Sent && !s.HasErrors && !d.HasErrors, statusText(s) + statusText(d)
			})
		})
	}
}
