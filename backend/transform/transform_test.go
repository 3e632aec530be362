package transform_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/transform"
)

func ptr(s string) *string { return &s }

func TestRegistry(t *testing.T) {
	t.Run("Default", func(t *testing.T) {
		if got := transform.Default().Names(); !reflect.DeepEqual(got, []string{"declarative", "lowercase_email"}) {
			t.Errorf("Names() = %v", got)
		}
	})
	t.Run("Register", func(t *testing.T) {
		r := transform.Default()
		r.Register("App\\Transformers\\UserTransformer", func(json.RawMessage) (transform.Transformer, error) {
			return transform.Func(func(_ context.Context, c transform.Change) (transform.Change, bool, error) { return c, true, nil }), nil
		})
		if _, ok := r.Lookup("App\\Transformers\\UserTransformer"); !ok {
			t.Error("a Moox-style class name is not registered")
		}
		if _, err := r.New("App\\Transformers\\UserTransformer", nil); err != nil {
			t.Error(err)
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		_, err := transform.Default().New("wp_user", nil)
		want := `unknown transformer: "wp_user" is not registered on this agent (registered: declarative, lowercase_email)`
		if !errors.Is(err, transform.ErrUnknown) || err.Error() != want {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	})
	t.Run("RegisterPanics", func(t *testing.T) {
		f := func(json.RawMessage) (transform.Transformer, error) { return nil, nil }
		for name, register := range map[string]func(r *transform.Registry){
			"duplicate": func(r *transform.Registry) { r.Register(transform.Declarative, f) },
			"empty":     func(r *transform.Registry) { r.Register("", f) },
			"space":     func(r *transform.Registry) { r.Register("my transformer", f) },
			"long":      func(r *transform.Registry) { r.Register(strings.Repeat("x", 256), f) },
			"nil":       func(r *transform.Registry) { r.Register("x", nil) },
		} {
			t.Run(name, func(t *testing.T) {
				defer func() {
					if recover() == nil {
						t.Error("Register did not panic")
					}
				}()
				register(transform.Default())
			})
		}
	})
	t.Run("NilTransformer", func(t *testing.T) {
		r := transform.NewRegistry()
		r.Register("broken", func(json.RawMessage) (transform.Transformer, error) { return nil, nil })
		if _, err := r.New("broken", nil); !errors.Is(err, transform.ErrBadConfig) {
			t.Errorf("err = %v, want ErrBadConfig", err)
		}
	})
}

func TestValidate(t *testing.T) {
	r := transform.Default()
	sync := func(class *string, config string) protocol.Sync {
		s := protocol.Sync{ID: 7, Title: "shop (users) to blog (wp_users)", SourceModel: "users", UseTransformerClass: class}
		if config != "" {
			s.TransformerConfig = json.RawMessage(config)
		}
		return s
	}
	for _, tc := range []struct {
		name   string
		s      protocol.Sync
		errMsg string // "" = valid
	}{
		{"None", sync(nil, ""), ""},
		{"EmptyName", sync(ptr(""), ""), ""},
		{"NullConfig", sync(nil, "null"), ""},
		{"GoTransformer", sync(ptr("lowercase_email"), ""), ""},
		{"GoTransformerConfig", sync(ptr("lowercase_email"), `{"fields": ["mail"]}`), ""},
		{"Declarative", sync(ptr("declarative"), `{"drop": ["password"]}`), ""},
		{"Unknown", sync(ptr("App\\Transformers\\Nope"), ""),
			`bad_request: sync 7 (shop (users) to blog (wp_users)): use_transformer_class: unknown transformer: "App\\Transformers\\Nope" is not registered on this agent (registered: declarative, lowercase_email)`},
		{"DeclarativeWithoutConfig", sync(ptr("declarative"), ""),
			"bad_request: sync 7 (shop (users) to blog (wp_users)): use_transformer_class: bad transformer config: declarative: the declarative transformer needs a config object"},
		{"DeclarativeBadConfig", sync(ptr("declarative"), `{"renam": {}}`),
			`bad_request: sync 7 (shop (users) to blog (wp_users)): use_transformer_class: bad transformer config: declarative: unknown operation "renam"`},
		{"ConfigWithoutName", sync(nil, `{"drop": ["x"]}`),
			"bad_request: sync 7 (shop (users) to blog (wp_users)): bad transformer config: transformer_config is set but use_transformer_class names no transformer"},
		{"GoTransformerBadConfig", sync(ptr("lowercase_email"), `{"fields": []}`),
			"bad_request: sync 7 (shop (users) to blog (wp_users)): use_transformer_class: bad transformer config: lowercase_email: fields: name at least one field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := transform.Validate(r, tc.s)
			if tc.errMsg == "" {
				if err != nil {
					t.Errorf("Validate = %v", err)
				}
				return
			}
			if protocol.CodeOf(err) != protocol.CodeBadRequest || !strings.HasPrefix(err.Error(), tc.errMsg) {
				t.Errorf("Validate = %v\nwant     %s...", err, tc.errMsg)
			}
		})
	}
	s := sync(ptr("nope"), "")
	s.Title = ""
	if err := transform.Validate(r, s); err == nil || !strings.HasPrefix(err.Error(), "bad_request: sync 7: use_transformer_class") {
		t.Errorf("Validate without a title = %v", err)
	}
}

func TestForSync(t *testing.T) {
	r := transform.Default()
	bindings := map[string]transform.Binding{
		"users": {Transformer: "declarative", Config: json.RawMessage(`{"set": {"from_binding": true}}`)},
	}
	run := func(t *testing.T, tr transform.Transformer) map[string]any {
		t.Helper()
		out, keep, err := tr.Transform(context.Background(), transform.Change{Model: "users", Data: map[string]any{"email": " A@B.example "}})
		if err != nil || !keep {
			t.Fatalf("Transform = %v, %v", keep, err)
		}
		return out.Data
	}

	s := protocol.Sync{ID: 7, SourceModel: "users", UseTransformerClass: ptr("lowercase_email")}
	tr, err := transform.ForSync(r, s, bindings)
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, tr); !reflect.DeepEqual(got, map[string]any{"email": "a@b.example"}) {
		t.Errorf("the sync's own transformer: %v", got)
	}

	s.UseTransformerClass = nil
	if tr, err = transform.ForSync(r, s, bindings); err != nil {
		t.Fatal(err)
	}
	if got := run(t, tr); got["from_binding"] != true {
		t.Errorf("the binding's transformer: %v", got)
	}

	s.SourceModel = "posts"
	if tr, err = transform.ForSync(r, s, bindings); err != nil || tr != nil {
		t.Errorf("no transformer: %v, %v", tr, err)
	}

	s.UseTransformerClass = ptr("nope")
	if _, err := transform.ForSync(r, s, bindings); !errors.Is(err, transform.ErrUnknown) || !strings.Contains(err.Error(), "sync 7") {
		t.Errorf("unknown: %v", err)
	}
	s.UseTransformerClass = nil
	bindings["posts"] = transform.Binding{Transformer: "nope"}
	if _, err := transform.ForSync(r, s, bindings); !errors.Is(err, transform.ErrUnknown) || !strings.Contains(err.Error(), `transformer_bindings["posts"]`) {
		t.Errorf("unknown binding: %v", err)
	}
}

func TestValidateBindings(t *testing.T) {
	r := transform.Default()
	var bindings map[string]transform.Binding
	if err := json.Unmarshal([]byte(`{
		"users": "lowercase_email",
		"posts": {"transformer": "declarative", "config": {"drop": ["secret"]}}
	}`), &bindings); err != nil {
		t.Fatal(err)
	}
	if err := transform.ValidateBindings(r, bindings); err != nil {
		t.Errorf("ValidateBindings = %v", err)
	}
	bindings["tags"] = transform.Binding{Transformer: "declarative"}
	bindings["pages"] = transform.Binding{Transformer: "nope"}
	err := transform.ValidateBindings(r, bindings)
	for _, want := range []string{`transformer_bindings["tags"]: bad transformer config: declarative`, `transformer_bindings["pages"]: unknown transformer: "nope"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateBindings = %v\nwant it to contain %s", err, want)
		}
	}
}

func TestBinding_JSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want transform.Binding
		back string
	}{
		{`"lowercase_email"`, transform.Binding{Transformer: "lowercase_email"}, `"lowercase_email"`},
		{`{"transformer": "declarative", "config": {"drop": ["a"]}}`,
			transform.Binding{Transformer: "declarative", Config: json.RawMessage(`{"drop": ["a"]}`)},
			`{"transformer":"declarative","config":{"drop":["a"]}}`},
	} {
		var b transform.Binding
		if err := json.Unmarshal([]byte(tc.in), &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(b, tc.want) {
			t.Errorf("unmarshal %s = %#v", tc.in, b)
		}
		if back, err := json.Marshal(b); err != nil || string(back) != tc.back {
			t.Errorf("marshal = %s, %v; want %s", back, err, tc.back)
		}
	}
	var b transform.Binding
	if err := json.Unmarshal([]byte(`{"name": "x"}`), &b); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestImage(t *testing.T) {
	ctx := context.Background()
	tr, err := transform.ParseDeclarative(json.RawMessage(`{"rename": {"email": "user_email"}, "set": {"big": 12345678901234567890}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := transform.Change{SyncID: 7, Model: "users", Event: protocol.EventCreated, ChangedAt: time.Now()}
	out, keep, err := transform.Image(ctx, tr, c, []byte(`{"ulid":"01A","email":"a@b.example","views":9223372036854775807,"price":1234.50}`))
	if err != nil || !keep {
		t.Fatalf("Image = %v, %v", keep, err)
	}
	want := `{"big":12345678901234567890,"price":1234.50,"ulid":"01A","user_email":"a@b.example","views":9223372036854775807}`
	if string(out) != want {
		t.Errorf("image = %s\nwant    %s", out, want)
	}

	img := []byte(`{"a":1}`)
	if out, keep, err := transform.Image(ctx, nil, c, img); err != nil || !keep || string(out) != string(img) {
		t.Errorf("nil transformer: %s, %v, %v", out, keep, err)
	}
	drop := transform.Func(func(_ context.Context, c transform.Change) (transform.Change, bool, error) { return c, false, nil })
	if out, keep, err := transform.Image(ctx, drop, c, img); err != nil || keep || out != nil {
		t.Errorf("dropping transformer: %s, %v, %v", out, keep, err)
	}
	for _, bad := range []string{`[1]`, `null`, `{"a":`, `{} {}`} {
		if _, _, err := transform.Image(ctx, tr, c, []byte(bad)); err == nil {
			t.Errorf("image %s: no error", bad)
		}
	}
	boom := transform.Func(func(context.Context, transform.Change) (transform.Change, bool, error) {
		return transform.Change{}, false, errors.New("boom")
	})
	if _, _, err := transform.Image(ctx, boom, c, img); err == nil || err.Error() != "boom" {
		t.Errorf("failing transformer: %v", err)
	}
}

func TestLowercaseEmail(t *testing.T) {
	ctx := context.Background()
	tr, err := transform.NewLowercaseEmail(nil)
	if err != nil {
		t.Fatal(err)
	}
	out, keep, err := tr.Transform(ctx, transform.Change{Data: map[string]any{
		"email": " Alice@Shop.Example", "user_email": "BOB@X.ORG", "name": "Alice", "other_email": "KEEP@X",
	}})
	want := map[string]any{"email": "alice@shop.example", "user_email": "bob@x.org", "name": "Alice", "other_email": "KEEP@X"}
	if err != nil || !keep || !reflect.DeepEqual(out.Data, want) {
		t.Errorf("Transform = %v, %v, %v", out.Data, keep, err)
	}
	tr, err = transform.NewLowercaseEmail(json.RawMessage(`{"fields": ["other_email"]}`))
	if err != nil {
		t.Fatal(err)
	}
	out, _, _ = tr.Transform(ctx, transform.Change{Data: map[string]any{"email": "A@B", "other_email": "KEEP@X", "n": nil}})
	if !reflect.DeepEqual(out.Data, map[string]any{"email": "A@B", "other_email": "keep@x", "n": nil}) {
		t.Errorf("configured fields: %v", out.Data)
	}
	for _, bad := range []string{`{"field": ["x"]}`, `{"fields": "x"}`, `{"fields": [""]}`, `[]`} {
		if _, err := transform.NewLowercaseEmail(json.RawMessage(bad)); err == nil {
			t.Errorf("config %s accepted", bad)
		}
	}
	if transform.DelayOf(tr) != 0 {
		t.Error("lowercase_email has a delay")
	}
}
