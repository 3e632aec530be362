package handler_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/mooxsync/mooxsync/backend/handler"
	"github.com/mooxsync/mooxsync/backend/handler/handlertest"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// inTx runs fn in a write transaction and commits it.
func inTx(t *testing.T, db *sqldb.DB, fn func(tx *handler.Tx) error) {
	t.Helper()
	ctx := context.Background()
	w, err := db.BeginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Rollback()
	if err := fn(&handler.Tx{Writer: w, DB: db}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// userID returns the ID of the wp_users row with the login.
func userID(t *testing.T, db *sqldb.DB, login string) int64 {
	t.Helper()
	var id int64
	q := db.Dialect().QuoteIdent
	if err := db.SQL().QueryRow(`SELECT `+q("ID")+` FROM wp_users WHERE user_login = `+db.Dialect().Placeholder(1), login).Scan(&id); err != nil {
		t.Fatalf("ID of %s: %v", login, err)
	}
	return id
}

func login(v string) protocol.Key { return protocol.Key{Field: "user_login", Value: v} }

func TestMetaHandler_WordPress(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		handlertest.CreateWordPressUsers(t, db, "wp_")
		p := db.Dialect().Placeholder
		// The target site has its own admin already, so its ids differ from the source's.
		sqldbtest.MustExec(t, db, map[string]string{"": `INSERT INTO wp_users (user_login, user_email, user_registered) VALUES ('admin', 'admin@blog.example', '2020-01-01 00:00:00');
INSERT INTO wp_usermeta (user_id, meta_key, meta_value) VALUES (1, 'nickname', 'admin');
INSERT INTO wp_usermeta (user_id, meta_key, meta_value) VALUES (1, 'first_name', 'Ada')`})
		h, err := handler.ParseWPUser(nil)
		if err != nil {
			t.Fatal(err)
		}

		sch, err := h.Check(ctx, db, "wp_users")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sch.Keys, []string{"user_login"}) || !reflect.DeepEqual(sch.Tables, []string{"wp_users", "wp_usermeta"}) {
			t.Errorf("schema keys %v tables %v", sch.Keys, sch.Tables)
		}
		fields := map[string]bool{}
		for _, f := range sch.Fields {
			fields[f] = true
		}
		for _, f := range []string{"user_login", "user_email", "display_name", "nickname", "first_name", "meta"} {
			if !fields[f] {
				t.Errorf("schema fields lack %q: %v", f, sch.Fields)
			}
		}
		if fields["ID"] {
			t.Errorf("schema fields hold the local id ID: %v", sch.Fields)
		}

		row := map[string]any{
			"user_login": "alice", "user_email": "alice@shop.example", "display_name": "Alice",
			"user_registered": "2026-11-26T12:00:00Z", "user_status": json.Number("0"),
			"nickname": "ali", "first_name": "Alice", "last_name": nil, "rich_editing": true, "use_ssl": false,
			"meta": map[string]any{"billing_city": "Köln", "prefs": map[string]any{"a": []any{json.Number("1")}}, "first_name": "ignored"},
		}
		inTx(t, db, func(tx *handler.Tx) error {
			inserted, err := h.Sync(ctx, tx, "wp_users", login("alice"), row)
			if err == nil && !inserted {
				t.Error("first Sync did not insert")
			}
			return err
		})
		id := userID(t, db, "alice")
		if id != 2 {
			t.Errorf("alice has ID %d on the target, want its own next id 2", id)
		}
		wantMeta := map[string]any{
			"nickname": "ali", "first_name": "Alice", "last_name": nil, "rich_editing": "1", "use_ssl": "",
			"billing_city": "Köln", "prefs": `{"a":[1]}`,
		}
		if got := handlertest.Meta(t, db, "wp_", "alice"); !reflect.DeepEqual(got, wantMeta) {
			t.Errorf("meta = %#v\nwant %#v", got, wantMeta)
		}
		var email string
		if err := db.SQL().QueryRow(`SELECT user_email FROM wp_users WHERE user_login = `+p(1), "alice").Scan(&email); err != nil || email != "alice@shop.example" {
			t.Errorf("user_email = %q, %v", email, err)
		}

		// Again with a change, and once more unchanged (MySQL then reports no affected rows).
		row["first_name"] = "Alicia"
		row["display_name"] = "Alicia"
		for range 2 {
			inTx(t, db, func(tx *handler.Tx) error {
				inserted, err := h.Sync(ctx, tx, "wp_users", login("alice"), row)
				if err == nil && inserted {
					t.Error("Sync of an existing user inserted")
				}
				return err
			})
		}
		wantMeta["first_name"] = "Alicia"
		if got := handlertest.Meta(t, db, "wp_", "alice"); !reflect.DeepEqual(got, wantMeta) {
			t.Errorf("meta after update = %#v\nwant %#v", got, wantMeta)
		}
		if n := handlertest.Count(t, db, "wp_usermeta"); n != 2+len(wantMeta) {
			t.Errorf("%d meta rows, want %d: updates must not add rows", n, 2+len(wantMeta))
		}
		if n := handlertest.Count(t, db, "wp_users"); n != 2 {
			t.Errorf("%d users, want 2", n)
		}

		inTx(t, db, func(tx *handler.Tx) error {
			exists, err := h.Exists(ctx, tx, "wp_users", login("alice"))
			if err == nil && !exists {
				t.Error("Exists(alice) = false")
			}
			deleted, err := h.Delete(ctx, tx, "wp_users", login("alice"))
			if err == nil && !deleted {
				t.Error("Delete(alice) = false")
			}
			return err
		})
		if n := handlertest.Count(t, db, "wp_usermeta"); n != 2 {
			t.Errorf("%d meta rows after the delete, want admin's 2", n)
		}
		if n := handlertest.Count(t, db, "wp_users"); n != 1 {
			t.Errorf("%d users after the delete, want 1", n)
		}
		if got := handlertest.Meta(t, db, "wp_", "admin"); !reflect.DeepEqual(got, map[string]any{"nickname": "admin", "first_name": "Ada"}) {
			t.Errorf("admin's meta = %v", got)
		}
		inTx(t, db, func(tx *handler.Tx) error {
			deleted, err := h.Delete(ctx, tx, "wp_users", login("alice"))
			if err == nil && deleted {
				t.Error("second Delete(alice) = true")
			}
			exists, err := h.Exists(ctx, tx, "wp_users", login("alice"))
			if err == nil && exists {
				t.Error("Exists(alice) after the delete")
			}
			return err
		})
	})
}

func TestMetaHandler_Errors(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		handlertest.CreateWordPressUsers(t, db, "wp_")
		meta := func(config string) *handler.MetaHandler {
			h, err := handler.ParseMeta(json.RawMessage(config))
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		const base = `"meta_foreign_key": "user_id", "meta_fields": ["nickname"]`
		for _, tc := range []struct {
			name, config, target string
			code                 protocol.Code
		}{
			{"NoMainTable", `{"main_key": "user_login", "meta_table": "wp_usermeta", ` + base + `}`, "users", protocol.CodeUnknownModel},
			{"NoMetaTable", `{"main_key": "user_login", "meta_table": "wp_meta", ` + base + `}`, "wp_users", protocol.CodeUnknownModel},
			{"MainKey", `{"main_key": "login", "meta_table": "wp_usermeta", ` + base + `}`, "wp_users", protocol.CodeUnknownColumn},
			{"MainID", `{"main_key": "user_login", "main_id": "id", "meta_table": "wp_usermeta", ` + base + `}`, "wp_users", protocol.CodeUnknownColumn},
			{"MainKeyIsID", `{"main_key": "ID", "meta_table": "wp_usermeta", ` + base + `}`, "wp_users", protocol.CodeBadRequest},
			{"ValueColumn", `{"main_key": "user_login", "meta_table": "wp_usermeta", "meta_value_column": "value", ` + base + `}`, "wp_users", protocol.CodeUnknownColumn},
			{"FieldIsColumn", `{"main_key": "user_login", "meta_table": "wp_usermeta", "meta_foreign_key": "user_id", "meta_fields": ["user_email"]}`, "wp_users", protocol.CodeBadRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := meta(tc.config).Check(ctx, db, tc.target)
				if protocol.CodeOf(err) != tc.code {
					t.Errorf("Check = %v, want code %s", err, tc.code)
				}
			})
		}

		h := meta(`{"main_key": "user_login", "meta_table": "wp_usermeta", "meta_object": "meta", ` + base + `}`)
		w, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Rollback()
		tx := &handler.Tx{Writer: w, DB: db}
		if _, err := h.Sync(ctx, tx, "wp_users", protocol.Key{Field: "user_email", Value: "a@b.example"}, map[string]any{"user_email": "a@b.example"}); protocol.CodeOf(err) != protocol.CodeBadRequest {
			t.Errorf("Sync keyed by user_email = %v, want bad_request", err)
		}
		if _, err := h.Sync(ctx, tx, "wp_users", login("bob"), map[string]any{"user_login": "bob", "meta": "x"}); protocol.CodeOf(err) != protocol.CodeBadRequest {
			t.Errorf("Sync with a meta object that is a string = %v, want bad_request", err)
		}
	})
}

// TestWPUser_Prefix: the wp_user handler finds the meta table of another table prefix.
func TestWPUser_Prefix(t *testing.T) {
	db := sqldbtest.MustOpenSQLite(t)
	ctx := context.Background()
	handlertest.CreateWordPressUsers(t, db, "wp2_")
	h, err := handler.ParseWPUser(nil)
	if err != nil {
		t.Fatal(err)
	}
	sch, err := h.Check(ctx, db, "wp2_users")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sch.Tables, []string{"wp2_users", "wp2_usermeta"}) {
		t.Errorf("tables = %v", sch.Tables)
	}
	inTx(t, db, func(tx *handler.Tx) error {
		_, err := h.Sync(ctx, tx, "wp2_users", login("carol"), map[string]any{"user_login": "carol", "nickname": "caro"})
		return err
	})
	if got := handlertest.Meta(t, db, "wp2_", "carol"); !reflect.DeepEqual(got, map[string]any{"nickname": "caro"}) {
		t.Errorf("meta = %v", got)
	}
}
