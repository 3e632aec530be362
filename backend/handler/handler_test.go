package handler_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/handler"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// fakeHandler is a Handler that writes nothing.
type fakeHandler struct{}

func (f *fakeHandler) Check(context.Context, *sqldb.DB, string) (handler.Schema, error) {
	return handler.Schema{}, nil
}

func (f *fakeHandler) Exists(context.Context, *handler.Tx, string, protocol.Key) (bool, error) {
	return false, nil
}

func (f *fakeHandler) Sync(context.Context, *handler.Tx, string, protocol.Key, map[string]any) (bool, error) {
	return true, nil
}

func (f *fakeHandler) Delete(context.Context, *handler.Tx, string, protocol.Key) (bool, error) {
	return false, nil
}

func TestRegistry(t *testing.T) {
	t.Run("Default", func(t *testing.T) {
		if got := handler.Default().Names(); !reflect.DeepEqual(got, []string{"meta", "wp_user"}) {
			t.Errorf("Names() = %v", got)
		}
	})
	t.Run("RegisterAndNew", func(t *testing.T) {
		r := handler.Default()
		var gotConfig json.RawMessage
		r.Register("custom", func(config json.RawMessage) (handler.Handler, error) {
			gotConfig = config
			return &fakeHandler{}, nil
		})
		if got := r.Names(); !reflect.DeepEqual(got, []string{"custom", "meta", "wp_user"}) {
			t.Errorf("Names() = %v", got)
		}
		if _, err := r.New(handler.Binding{Handler: "custom", Config: json.RawMessage(" null ")}); err != nil || gotConfig != nil {
			t.Errorf("New(custom, null) = %v, factory saw config %q; want no error and a nil config", err, gotConfig)
		}
		if _, ok := r.Lookup("custom"); !ok {
			t.Error("Lookup(custom) found nothing")
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		_, err := handler.Default().New(handler.Binding{Handler: "wp_users"})
		if !errors.Is(err, handler.ErrUnknown) {
			t.Fatalf("err = %v, want ErrUnknown", err)
		}
		want := `unknown sync handler: "wp_users" is not registered on this agent (registered: meta, wp_user)`
		if err.Error() != want {
			t.Errorf("err = %q\nwant %q", err, want)
		}
	})
	t.Run("BadConfig", func(t *testing.T) {
		_, err := handler.Default().New(handler.Binding{Handler: "meta", Config: json.RawMessage(`{"main_key": "user_login"}`)})
		if !errors.Is(err, handler.ErrBadConfig) || !strings.Contains(err.Error(), "meta: meta_table") {
			t.Errorf("err = %v, want ErrBadConfig naming meta and meta_table", err)
		}
	})
	t.Run("RegisterPanics", func(t *testing.T) {
		for name, register := range map[string]func(r *handler.Registry){
			"duplicate": func(r *handler.Registry) {
				r.Register("meta", func(json.RawMessage) (handler.Handler, error) { return nil, nil })
			},
			"empty": func(r *handler.Registry) {
				r.Register("", func(json.RawMessage) (handler.Handler, error) { return nil, nil })
			},
			"space": func(r *handler.Registry) {
				r.Register("a b", func(json.RawMessage) (handler.Handler, error) { return nil, nil })
			},
			"nil": func(r *handler.Registry) { r.Register("x", nil) },
		} {
			t.Run(name, func(t *testing.T) {
				defer func() {
					if recover() == nil {
						t.Error("Register did not panic")
					}
				}()
				register(handler.Default())
			})
		}
	})
}

func TestBinding_JSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want handler.Binding
		back string
	}{
		{`"wp_user"`, handler.Binding{Handler: "wp_user"}, `"wp_user"`},
		{`{"handler": "wp_user"}`, handler.Binding{Handler: "wp_user"}, `"wp_user"`},
		{`{"handler":"meta","config":{"main_key":"email"}}`,
			handler.Binding{Handler: "meta", Config: json.RawMessage(`{"main_key":"email"}`)},
			`{"handler":"meta","config":{"main_key":"email"}}`},
	} {
		var b handler.Binding
		if err := json.Unmarshal([]byte(tc.in), &b); err != nil {
			t.Fatalf("unmarshal %s: %v", tc.in, err)
		}
		if !reflect.DeepEqual(b, tc.want) {
			t.Errorf("unmarshal %s = %#v, want %#v", tc.in, b, tc.want)
		}
		back, err := json.Marshal(b)
		if err != nil || string(back) != tc.back {
			t.Errorf("marshal %#v = %s, %v; want %s", b, back, err, tc.back)
		}
	}
	// A map of bindings, as the agent config holds them.
	var m map[string]handler.Binding
	if err := json.Unmarshal([]byte(`{"wp_users": "wp_user", "x": {"handler": "meta", "config": {}}}`), &m); err != nil {
		t.Fatal(err)
	}
	if m["wp_users"].Handler != "wp_user" || m["x"].Handler != "meta" {
		t.Errorf("bindings = %#v", m)
	}
	for _, bad := range []string{`{"name": "x"}`, `{"handler": "x", "cfg": {}}`, `5`, `["x"]`} {
		var b handler.Binding
		if err := json.Unmarshal([]byte(bad), &b); err == nil {
			t.Errorf("unmarshal %s: no error", bad)
		}
	}
	if got := handler.Bindings(map[string]string{"wp_users": "wp_user"}); !reflect.DeepEqual(got, map[string]handler.Binding{"wp_users": {Handler: "wp_user"}}) {
		t.Errorf("Bindings = %#v", got)
	}
}

func TestParseMeta_Errors(t *testing.T) {
	const ok = `"main_key": "user_login", "meta_table": "wp_usermeta", "meta_foreign_key": "user_id", "meta_fields": ["nickname"]`
	for _, tc := range []struct{ config, want string }{
		{``, "needs a config"},
		{`null`, "needs a config"},
		{`[]`, "config: cannot unmarshal array"},
		{`{` + ok + `, "meta_feilds": []}`, `unknown field "meta_feilds"`},
		{`{` + ok + `, "main_key": 5}`, "config: cannot unmarshal number"},
		{`{"meta_table": "m", "meta_foreign_key": "u", "meta_fields": ["a"]}`, "main_key: name"},
		{`{"main_key": "k", "meta_foreign_key": "u", "meta_fields": ["a"]}`, "meta_table: name"},
		{`{"main_key": "k", "meta_table": "m", "meta_fields": ["a"]}`, "meta_foreign_key: name"},
		{`{"main_key": "k", "meta_table": "m", "meta_foreign_key": "u"}`, "meta_fields or meta_object"},
		{`{` + ok + `, "main_table": "wp_usermeta"}`, "main_table and meta_table must differ"},
		{`{` + ok + `, "meta_fields": ["a", "a"]}`, `meta_fields: "a" is listed twice`},
		{`{` + ok + `, "meta_fields": [""]}`, "meta_fields: empty field name"},
		{`{` + ok + `, "meta_object": "nickname"}`, `meta_object "nickname" is also in meta_fields`},
		{`{` + ok + `, "meta_key_column": "user_id"}`, `"user_id" is named twice`},
		{`{` + ok + `} {}`, "trailing data"},
	} {
		_, err := handler.ParseMeta(json.RawMessage(tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseMeta(%s) = %v, want an error containing %q", tc.config, err, tc.want)
		}
	}
	h, err := handler.ParseMeta(json.RawMessage(`{` + ok + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := h.Config(); c.MetaKeyColumn != "meta_key" || c.MetaValueColumn != "meta_value" {
		t.Errorf("defaults not filled in: %+v", c)
	}
}

func TestParseWPUser(t *testing.T) {
	h, err := handler.ParseWPUser(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := h.Config()
	if c.MainKey != "user_login" || c.MainID != "ID" || c.MetaForeignKey != "user_id" || c.MetaObject != "meta" ||
		!reflect.DeepEqual(c.MetaFields, handler.WPUserMetaFields) {
		t.Errorf("config = %+v", c)
	}
	h, err = handler.ParseWPUser(json.RawMessage(`{"main_key": "user_email", "meta_fields": ["nickname"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := h.Config(); c.MainKey != "user_email" || !reflect.DeepEqual(c.MetaFields, []string{"nickname"}) || c.MetaObject != "meta" {
		t.Errorf("config with overrides = %+v", c)
	}
	if _, err := handler.ParseWPUser(json.RawMessage(`{"main_login": "x"}`)); err == nil {
		t.Error("unknown key accepted")
	}
}
