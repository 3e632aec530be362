package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/apply"
	"github.com/mooxsync/mooxsync/backend/handler"
	"github.com/mooxsync/mooxsync/backend/handler/handlertest"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// usersSync syncs a shop's users (platform 1) into a WordPress blog's wp_users (platform
// 2), renaming the shop's fields to WordPress's.
var usersSync = protocol.Sync{
	ID: 7, Status: true, SourcePlatformID: 1, SourceModel: "users", TargetPlatformID: 2,
	TargetModel: "wp_users", IfExists: protocol.IfExistsUpdate,
	FieldMappings: map[string]string{
		"id": "ID", "login": "user_login", "email": "user_email", "name": "display_name",
		"registered_at": "user_registered", "nickname": "nickname", "first_name": "first_name",
		"last_name": "last_name", "meta": "meta",
	},
}

// wpConfig binds wp_users to the wp_user handler; users are matched by their login.
var wpConfig = apply.Config{
	UniqueIdentifierFields: []string{"login", "user_login"},
	SyncBindings:           map[string]handler.Binding{"wp_users": {Handler: handler.WPUser}},
}

func userChange(event, login string, data map[string]any) map[string]any {
	c := change(event, "login", login, data)
	c["model"] = "users"
	return c
}

func alice(first string) map[string]any {
	return map[string]any{
		"id": 41, "login": "alice", "email": "alice@shop.example", "name": "Alice " + first,
		"registered_at": "2026-11-26T12:00:00Z", "nickname": "ali", "first_name": first, "last_name": "Liddell",
		"meta": map[string]any{"billing_city": "Köln"},
	}
}

func TestApplyBatch_SyncHandler(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		handlertest.CreateWordPressUsers(t, db, "wp_")
		sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO wp_users (user_login, user_registered) VALUES ('admin', '2020-01-01 00:00:00')`})
		for _, table := range []string{"wp_users", "wp_usermeta"} {
			if err := db.InstallTriggers(ctx, table); err != nil {
				t.Fatal(err)
			}
		}
		a := apply.New(db, wpConfig)

		res := mustApply(t, a, usersSync, mustBatch(t, "b1", userChange(protocol.EventCreated, "alice", alice("Alice"))))
		if res != (apply.Result{Inserted: 1}) {
			t.Errorf("create: %+v", res)
		}
		row := mustGet(t, db, "wp_users", "user_login", "alice")
		if row["ID"] != json.Number("2") || row["user_email"] != "alice@shop.example" || row["display_name"] != "Alice Alice" {
			t.Errorf("wp_users row = %v (the source's id 41 must not cross)", row)
		}
		want := map[string]any{"nickname": "ali", "first_name": "Alice", "last_name": "Liddell", "billing_city": "Köln"}
		if got := handlertest.Meta(t, db, "wp_", "alice"); !reflect.DeepEqual(got, want) {
			t.Errorf("meta = %v, want %v", got, want)
		}

		// The handler's writes carry the origin, so they are never echoed back to platform 1.
		changes, err := db.ReadChanges(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		models := map[string]int{}
		for _, c := range changes {
			models[c.Model]++
			if c.Model != "wp_users" || c.Row["user_login"] != "admin" {
				if c.OriginPlatformID != 1 {
					t.Errorf("outbox %s %s: origin %d, want 1", c.Model, c.Op, c.OriginPlatformID)
				}
			}
		}
		if models["wp_users"] < 1 || models["wp_usermeta"] != 4 {
			t.Errorf("outbox changes by model = %v, want alice's user and her 4 meta rows", models)
		}

		res = mustApply(t, a, usersSync, mustBatch(t, "b2", userChange(protocol.EventUpdated, "alice", alice("Alicia"))))
		if res != (apply.Result{Updated: 1}) {
			t.Errorf("update: %+v", res)
		}
		want["first_name"] = "Alicia"
		if got := handlertest.Meta(t, db, "wp_", "alice"); !reflect.DeepEqual(got, want) {
			t.Errorf("meta after update = %v, want %v", got, want)
		}
		if res := mustApply(t, a, usersSync, mustBatch(t, "b2", userChange(protocol.EventUpdated, "alice", alice("Again")))); !res.AlreadyApplied {
			t.Errorf("redelivered batch: %+v", res)
		}

		res = mustApply(t, a, usersSync, mustBatch(t, "b3", userChange(protocol.EventDeleted, "alice", nil)))
		if res != (apply.Result{Deleted: 1}) {
			t.Errorf("delete: %+v", res)
		}
		if n := handlertest.Count(t, db, "wp_usermeta"); n != 0 {
			t.Errorf("%d meta rows left after the delete", n)
		}
		if n := handlertest.Count(t, db, "wp_users"); n != 1 {
			t.Errorf("%d users left after the delete, want the admin", n)
		}
		res = mustApply(t, a, usersSync, mustBatch(t, "b4", userChange(protocol.EventDeleted, "alice", nil)))
		if res != (apply.Result{Skipped: 1}) {
			t.Errorf("delete of a missing user: %+v", res)
		}
	})
}

func TestApplyBatch_SyncHandlerChecks(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		handlertest.CreateWordPressUsers(t, db, "wp_")
		a := apply.New(db, apply.Config{
			UniqueIdentifierFields: []string{"login", "email"},
			SyncBindings:           wpConfig.SyncBindings,
		})

		t.Run("UnknownField", func(t *testing.T) {
			s := usersSync
			s.FieldMappings = map[string]string{"login": "user_login", "bogus": "bogus"}
			b := mustBatch(t, "c1", userChange(protocol.EventCreated, "alice", map[string]any{"login": "alice", "bogus": 1}))
			if err := a.CheckBatch(ctx, s, b); protocol.CodeOf(err) != protocol.CodeUnknownColumn || !strings.Contains(err.Error(), `"bogus"`) {
				t.Errorf("CheckBatch = %v, want unknown_column", err)
			}
		})
		t.Run("KeyIsNotMainKey", func(t *testing.T) {
			c := change(protocol.EventCreated, "email", "a@b.example", map[string]any{"login": "alice", "email": "a@b.example"})
			c["model"] = "users"
			err := a.CheckBatch(ctx, usersSync, mustBatch(t, "c2", c))
			if protocol.CodeOf(err) != protocol.CodeBadRequest || !strings.Contains(err.Error(), "matches records by user_login") {
				t.Errorf("CheckBatch = %v, want bad_request naming user_login", err)
			}
		})
		t.Run("MissingMetaTable", func(t *testing.T) {
			a := apply.New(db, apply.Config{
				UniqueIdentifierFields: wpConfig.UniqueIdentifierFields,
				SyncBindings: map[string]handler.Binding{"wp_users": {Handler: handler.Meta, Config: json.RawMessage(
					`{"main_key": "user_login", "meta_table": "wp_meta", "meta_foreign_key": "user_id", "meta_fields": ["nickname"]}`)}},
			})
			err := a.CheckBatch(ctx, usersSync, mustBatch(t, "c3", userChange(protocol.EventCreated, "alice", alice("A"))))
			if protocol.CodeOf(err) != protocol.CodeUnknownModel || !strings.Contains(err.Error(), `sync handler of "wp_users"`) {
				t.Errorf("CheckBatch = %v, want unknown_model from the handler", err)
			}
		})
		t.Run("IfExists", func(t *testing.T) {
			mustApply(t, a, usersSync, mustBatch(t, "d1", userChange(protocol.EventCreated, "bob", map[string]any{"login": "bob", "first_name": "Bob"})))
			skip := usersSync
			skip.IfExists = protocol.IfExistsSkip
			res := mustApply(t, a, skip, mustBatch(t, "d2",
				userChange(protocol.EventUpdated, "bob", map[string]any{"login": "bob", "first_name": "Robert"}),
				userChange(protocol.EventCreated, "carol", map[string]any{"login": "carol", "first_name": "Carol"})))
			if res != (apply.Result{Skipped: 1, Inserted: 1}) {
				t.Errorf("skip: %+v", res)
			}
			if got := handlertest.Meta(t, db, "wp_", "bob")["first_name"]; got != "Bob" {
				t.Errorf("bob's first_name = %v under if_exists skip", got)
			}
			fail := usersSync
			fail.IfExists = protocol.IfExistsError
			_, err := a.ApplyBatch(ctx, fail, mustBatch(t, "d3",
				userChange(protocol.EventCreated, "dave", map[string]any{"login": "dave", "first_name": "Dave"}),
				userChange(protocol.EventUpdated, "bob", map[string]any{"login": "bob", "first_name": "Robert"})))
			if protocol.CodeOf(err) != protocol.CodeConflict {
				t.Errorf("if_exists error: %v, want conflict", err)
			}
			if got := handlertest.Meta(t, db, "wp_", "dave"); len(got) != 0 {
				t.Errorf("dave's meta = %v: the failed batch must leave nothing", got)
			}
		})
	})
}

// TestApplyBatch_SyncHandlerRollback: a handler failing on a later change rolls back what
// it wrote for the earlier ones, and the batch stays unapplied.
func TestApplyBatch_SyncHandlerRollback(t *testing.T) {
	db := sqldbtest.MustOpenSQLite(t)
	ctx := context.Background()
	handlertest.CreateWordPressUsers(t, db, "wp_")
	a := apply.New(db, wpConfig)
	b := mustBatch(t, "r1",
		userChange(protocol.EventCreated, "alice", alice("Alice")),
		userChange(protocol.EventCreated, "bob", map[string]any{"login": "bob", "meta": "not an object"}))
	if _, err := a.ApplyBatch(ctx, usersSync, b); protocol.CodeOf(err) != protocol.CodeBadRequest || !strings.Contains(err.Error(), "change 1") {
		t.Fatalf("ApplyBatch = %v, want bad_request for change 1", err)
	}
	if n := handlertest.Count(t, db, "wp_users") + handlertest.Count(t, db, "wp_usermeta"); n != 0 {
		t.Errorf("%d rows written by a failed batch", n)
	}
	b.Changes = b.Changes[:1]
	if res := mustApply(t, a, usersSync, b); res != (apply.Result{Inserted: 1}) {
		t.Errorf("the batch after the fix: %+v", res)
	}
}

// recorder is a Go sync handler that records its calls, as an agent's own handler would be
// registered.
type recorder struct {
	calls []string
}

func (r *recorder) Check(context.Context, *sqldb.DB, string) (handler.Schema, error) {
	return handler.Schema{Fields: []string{"ulid", "title"}}, nil
}

func (r *recorder) Exists(context.Context, *handler.Tx, string, protocol.Key) (bool, error) {
	return false, nil
}

func (r *recorder) Sync(_ context.Context, _ *handler.Tx, target string, key protocol.Key, row map[string]any) (bool, error) {
	r.calls = append(r.calls, "sync "+target+" "+key.Field+"="+key.Value.(string)+" "+row["title"].(string))
	return true, nil
}

func (r *recorder) Delete(_ context.Context, _ *handler.Tx, target string, key protocol.Key) (bool, error) {
	r.calls = append(r.calls, "delete "+target+" "+key.Value.(string))
	return true, nil
}

// TestApplyBatch_GoHandler: a handler registered by name takes a model that need not even
// be a table, and other models keep the default path.
func TestApplyBatch_GoHandler(t *testing.T) {
	db := sqldbtest.MustOpenSQLite(t)
	sqldbtest.CreatePosts(t, db, "posts")
	rec := &recorder{}
	reg := handler.NewRegistry()
	reg.Register("recorder", func(json.RawMessage) (handler.Handler, error) { return rec, nil })
	a := apply.New(db, apply.Config{Handlers: reg, SyncBindings: map[string]handler.Binding{"feed": {Handler: "recorder"}}})
	feed := postsSync
	feed.TargetModel = "feed"
	res := mustApply(t, a, feed, mustBatch(t, "g1",
		created("01A", map[string]any{"title": "Hello", "id": 5}),
		change(protocol.EventDeleted, "ulid", "01B", nil)))
	if res != (apply.Result{Inserted: 1, Deleted: 1}) {
		t.Errorf("result = %+v", res)
	}
	if want := []string{"sync feed ulid=01A Hello", "delete feed 01B"}; !reflect.DeepEqual(rec.calls, want) {
		t.Errorf("calls = %q, want %q", rec.calls, want)
	}
	if res := mustApply(t, a, postsSync, mustBatch(t, "g2", created("01C", map[string]any{"title": "Plain"}))); res != (apply.Result{Inserted: 1}) {
		t.Errorf("unbound model: %+v", res)
	}
}

func TestConfig_Validate(t *testing.T) {
	if err := wpConfig.Validate(); err != nil {
		t.Errorf("Validate(wp_user binding) = %v", err)
	}
	if err := (apply.Config{}).Validate(); err != nil {
		t.Errorf("Validate(no bindings) = %v", err)
	}
	bad := apply.Config{SyncBindings: map[string]handler.Binding{
		"wp_users": {Handler: "wp_usr"},
		"wp_posts": {Handler: handler.Meta, Config: json.RawMessage(`{"main_key": "post_name"}`)},
	}}
	err := bad.Validate()
	for _, want := range []string{
		`sync_bindings["wp_users"]: unknown sync handler: "wp_usr" is not registered on this agent (registered: meta, wp_user)`,
		`sync_bindings["wp_posts"]: bad sync handler config: meta: meta_table`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v\nwant it to contain %q", err, want)
		}
	}
	if !errors.Is(err, handler.ErrUnknown) || !errors.Is(err, handler.ErrBadConfig) {
		t.Errorf("Validate = %v, want ErrUnknown and ErrBadConfig", err)
	}

	// An Applier built anyway refuses batches for the model, with the same message.
	db := sqldbtest.MustOpenSQLite(t)
	handlertest.CreateWordPressUsers(t, db, "wp_")
	a := apply.New(db, apply.Config{UniqueIdentifierFields: []string{"login"}, SyncBindings: bad.SyncBindings})
	_, err = a.ApplyBatch(context.Background(), usersSync, mustBatch(t, "v1", userChange(protocol.EventCreated, "alice", alice("A"))))
	if !errors.Is(err, handler.ErrUnknown) || !strings.Contains(err.Error(), `"wp_usr" is not registered`) {
		t.Errorf("ApplyBatch with an unknown handler = %v", err)
	}
}
