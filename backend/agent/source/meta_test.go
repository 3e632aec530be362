package source_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/agent/source"
	"github.com/mooxsync/mooxsync/backend/deliver"
	"github.com/mooxsync/mooxsync/backend/handler/handlertest"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// TestMetaTransformers adds a WordPress user's meta rows to its changes (the wp_user
// preset: WordPress's per-user keys only, never capabilities), depends on the meta table,
// and refuses configs it cannot use.
func TestMetaTransformers(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, app *sqldb.DB) {
		ctx := context.Background()
		handlertest.CreateWordPressUsers(t, app, "wp_")
		sqldbtest.MustExec(t, app, map[string]string{"": `INSERT INTO wp_users (user_login, user_email) VALUES ('alice', 'a@x.example')`})
		var id int64
		q := app.Dialect().QuoteIdent
		if err := app.SQL().QueryRow(`SELECT ` + q("ID") + ` FROM wp_users`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{"first_name": "Alice", "wp_capabilities": "a:0:{}", "billing_phone": "123"} {
			if _, err := app.SQL().Exec(`INSERT INTO wp_usermeta (user_id, meta_key, meta_value) VALUES (`+
				app.Dialect().Placeholder(1)+`, `+app.Dialect().Placeholder(2)+`, `+app.Dialect().Placeholder(3)+`)`, id, k, v); err != nil {
				t.Fatal(err)
			}
		}
		reg := transform.NewRegistry()
		source.RegisterTransformers(reg, app)
		if got := reg.Names(); !slices.Equal(got, []string{"meta", "wp_user"}) {
			t.Fatalf("names = %v", got)
		}
		row := func() []byte {
			b, _ := json.Marshal(map[string]any{"ID": id, "user_login": "alice"})
			return b
		}
		run := func(name, config string, event string) map[string]any {
			t.Helper()
			var cfg json.RawMessage
			if config != "" {
				cfg = json.RawMessage(config)
			}
			tr, err := reg.New(name, cfg)
			if err != nil {
				t.Fatal(err)
			}
			img, keep, err := transform.Image(ctx, tr, transform.Change{Model: "wp_users", Event: event}, row())
			if err != nil || !keep {
				t.Fatalf("%s: %v %v", name, keep, err)
			}
			var out map[string]any
			if err := json.Unmarshal(img, &out); err != nil {
				t.Fatal(err)
			}
			return out
		}
		if got := run("wp_user", "", protocol.EventCreated)["meta"]; !jsonEq(got, `{"first_name":"Alice"}`) {
			t.Errorf("wp_user meta = %v", got)
		}
		if got := run("meta", `{"meta_table":"wp_usermeta","meta_foreign_key":"user_id","main_id":"ID","meta_object":"m"}`,
			protocol.EventUpdated)["m"]; !jsonEq(got, `{"first_name":"Alice","billing_phone":"123"}`) {
			t.Errorf("meta = %v", got)
		}
		if got := run("wp_user", "", protocol.EventDeleted); got["meta"] != nil {
			t.Errorf("a delete got meta: %v", got)
		}
		tr, _ := reg.New("wp_user", nil)
		if deps := tr.(deliver.Dependent).Dependencies("wp2_users"); !slices.Equal(deps, []deliver.Dependency{{Table: "wp2_usermeta", Column: "user_id"}}) {
			t.Errorf("dependencies = %v", deps)
		}
		for name, config := range map[string]string{"meta": "", "wp_user": `{"meta_key_column":"user_id"}`} {
			var cfg json.RawMessage
			if config != "" {
				cfg = json.RawMessage(config)
			}
			if _, err := reg.New(name, cfg); err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s %s: %v", name, config, err)
			}
		}
	})
}

func jsonEq(v any, want string) bool {
	b, _ := json.Marshal(v)
	var a, w any
	_ = json.Unmarshal(b, &a)
	_ = json.Unmarshal([]byte(want), &w)
	ab, _ := json.Marshal(a)
	wb, _ := json.Marshal(w)
	return string(ab) == string(wb)
}
