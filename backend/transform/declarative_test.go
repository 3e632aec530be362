package transform_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/transform"
)

func mustDeclarative(t *testing.T, config string) *transform.DeclarativeTransformer {
	t.Helper()
	tr, err := transform.ParseDeclarative(json.RawMessage(config))
	if err != nil {
		t.Fatalf("ParseDeclarative(%s): %v", config, err)
	}
	return tr
}

func run(t *testing.T, tr transform.Transformer, data map[string]any) map[string]any {
	t.Helper()
	out, keep, err := tr.Transform(context.Background(), transform.Change{Model: "users", Event: "updated", Data: data})
	if err != nil || !keep {
		t.Fatalf("Transform = %v, %v", keep, err)
	}
	return out.Data
}

func TestDeclarative_Transform(t *testing.T) {
	tr := mustDeclarative(t, `{
		"set":        {"user_status": 0, "source": "shop", "tags": ["a", {"b": null}], "status": "forced"},
		"rename":     {"email": "user_email", "name": "display_name", "a": "b", "b": "a"},
		"map_values": {"status": {"values": {"active": 1, "1": "one", "true": "yes", "null": "none"}, "default": 0},
		               "role": {"values": {"admin": "administrator"}},
		               "name": {"values": {"": "Anonymous"}}},
		"drop":       ["password", "remember_token"]
	}`)
	for _, tc := range []struct {
		name     string
		in, want map[string]any
	}{
		{"All",
			map[string]any{"id": json.Number("7"), "email": "a@b", "name": "", "password": "x", "role": "admin", "status": "active", "a": 1, "b": 2},
			map[string]any{"id": json.Number("7"), "user_email": "a@b", "display_name": "Anonymous", "role": "administrator",
				"status": "forced", "a": 2, "b": 1, "user_status": json.Number("0"), "source": "shop", "tags": []any{"a", map[string]any{"b": nil}}}},
		{"RenameReplacesField",
			map[string]any{"email": "new", "user_email": "old"},
			map[string]any{"user_email": "new", "user_status": json.Number("0"), "source": "shop", "tags": []any{"a", map[string]any{"b": nil}}, "status": "forced"}},
		{"UnmappedValueKept",
			map[string]any{"role": "editor"},
			map[string]any{"role": "editor", "user_status": json.Number("0"), "source": "shop", "tags": []any{"a", map[string]any{"b": nil}}, "status": "forced"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := make(map[string]any, len(tc.in))
			for k, v := range tc.in {
				in[k] = v
			}
			if got := run(t, tr, in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
			if !reflect.DeepEqual(in, tc.in) {
				t.Errorf("the input was modified: %v", in)
			}
		})
	}

	// Values match by their text; objects and arrays match nothing.
	mv := mustDeclarative(t, `{"map_values": {"v": {"values": {"1": "one", "1.50": "decimal", "true": "yes", "null": "none", "x": "ex"}, "default": "other"}}}`)
	for _, tc := range []struct{ in, want any }{
		{json.Number("1"), "one"}, {"1", "one"}, {json.Number("1.50"), "decimal"}, {json.Number("1.5"), "other"},
		{true, "yes"}, {false, "other"}, {nil, "none"}, {"x", "ex"}, {map[string]any{}, "other"}, {[]any{"x"}, "other"},
		{float64(1), "one"}, {int64(1), "one"},
	} {
		if got := run(t, mv, map[string]any{"v": tc.in})["v"]; got != tc.want {
			t.Errorf("map %#v = %#v, want %#v", tc.in, got, tc.want)
		}
	}
	if got := run(t, mv, map[string]any{"w": 1}); !reflect.DeepEqual(got, map[string]any{"w": 1}) {
		t.Errorf("a missing field is not added: %v", got)
	}
	nullDefault := mustDeclarative(t, `{"map_values": {"v": {"values": {"a": "b"}, "default": null}}}`)
	if got := run(t, nullDefault, map[string]any{"v": "z"}); !reflect.DeepEqual(got, map[string]any{"v": nil}) {
		t.Errorf("null default: %v", got)
	}

	// Constants are copies: changing one output does not change the next.
	out := run(t, tr, map[string]any{})
	out["tags"].([]any)[1].(map[string]any)["b"] = "changed"
	if got := run(t, tr, map[string]any{})["tags"]; !reflect.DeepEqual(got, []any{"a", map[string]any{"b": nil}}) {
		t.Errorf("set constant changed by an earlier output: %v", got)
	}

	if transform.DelayOf(tr) != 0 {
		t.Error("delay without a delay")
	}
	if d := transform.DelayOf(mustDeclarative(t, `{"delay": "1m30s"}`)); d != 90*time.Second {
		t.Errorf("delay = %v", d)
	}
	if got := run(t, mustDeclarative(t, `{}`), map[string]any{"a": 1}); !reflect.DeepEqual(got, map[string]any{"a": 1}) {
		t.Errorf("empty config: %v", got)
	}
}

func TestParseDeclarative_Errors(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{``, "needs a config object"},
		{`null`, "needs a config object"},
		{`[]`, "config must be a JSON object"},
		{`"drop"`, "config must be a JSON object"},
		{`{} {}`, "config must be a JSON object"},
		{`{"drop": ["a"], "renam": {}}`, `unknown operation "renam" (want drop, map_values, rename, set, delay)`},
		{`{"drop": "password"}`, `drop: want a list of field names`},
		{`{"drop": [1]}`, `drop: want a list of field names`},
		{`{"drop": ["a", "a"]}`, `drop: "a" is listed twice`},
		{`{"drop": [""]}`, `drop: empty field name`},
		{`{"rename": ["a"]}`, `rename: want an object of field to new name`},
		{`{"rename": {"a": 1}}`, `rename: want an object of field to new name`},
		{`{"rename": {"a": ""}}`, `rename: "a" is renamed to an empty name`},
		{`{"rename": {"a": "a"}}`, `rename: "a" is renamed to itself`},
		{`{"rename": {"a": "c", "b": "c"}}`, `rename: "a" and "b" are both renamed to "c"`},
		{`{"rename": {"": "c"}}`, `rename: empty field name`},
		{`{"drop": ["a"], "rename": {"a": "b"}}`, `rename: "a" is also dropped`},
		{`{"set": ["a"]}`, `set: want an object of field to value`},
		{`{"set": 5}`, `set: want an object of field to value`},
		{`{"set": {"": 1}}`, `set: empty field name`},
		{`{"map_values": []}`, `map_values: want an object of field to {"values"`},
		{`{"map_values": {"s": 1}}`, `map_values: s: want {"values"`},
		{`{"map_values": {"s": {"active": 1}}}`, `map_values: s: unknown key "active" (want "values" and optionally "default")`},
		{`{"map_values": {"s": {"values": [1]}}}`, `map_values: s: "values" must be an object`},
		{`{"map_values": {"s": {"default": 0}}}`, `map_values: s: "values" is missing`},
		{`{"map_values": {"s": {"values": {}}}}`, `map_values.s: no values and no default`},
		{`{"map_values": {"": {"values": {"a": 1}}}}`, `map_values: empty field name`},
		{`{"drop": ["s"], "map_values": {"s": {"values": {"a": 1}}}}`, `map_values: "s" is also dropped`},
		{`{"delay": 30}`, `delay: want a duration string`},
		{`{"delay": "30"}`, `delay: "30" is not a duration`},
		{`{"delay": "-1s"}`, `delay: -1s is not between 0 and 24h0m0s`},
		{`{"delay": "25h"}`, `delay: 25h is not between 0 and 24h0m0s`},
	} {
		_, err := transform.ParseDeclarative(json.RawMessage(tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDeclarative(%s) = %v\nwant an error containing %s", tc.config, err, tc.want)
		}
	}
}

func TestDeclarativeConfig_RoundTrip(t *testing.T) {
	const config = `{"drop":["password"],"map_values":{"status":{"default":0,"values":{"active":1}}},"rename":{"email":"user_email"},"set":{"source":"shop"},"delay":"5s"}`
	tr := mustDeclarative(t, config)
	b, err := json.Marshal(tr.Config())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != config {
		t.Errorf("config = %s\nwant     %s", b, config)
	}
	again := mustDeclarative(t, string(b))
	if !reflect.DeepEqual(again.Config(), tr.Config()) {
		t.Errorf("round trip changed the config: %#v", again.Config())
	}
}

// FuzzParseDeclarative: no config makes parsing or transforming panic, and an accepted
// config turns any row into a row that encodes.
func FuzzParseDeclarative(f *testing.F) {
	for _, seed := range []string{
		`{"drop":["password"],"map_values":{"status":{"values":{"active":1},"default":0}},"rename":{"email":"user_email"},"set":{"source":"shop"},"delay":"5s"}`,
		`{"rename":{"a":"b","b":"a"}}`, `{"map_values":{"v":{"values":{},"default":null}}}`, `{}`, `null`, `[]`, `{"set":{"x":{"y":[1,2]}}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, config string) {
		tr, err := transform.ParseDeclarative(json.RawMessage(config))
		if err != nil {
			return
		}
		out, keep, err := tr.Transform(context.Background(), transform.Change{Data: map[string]any{
			"a": "x", "b": json.Number("1"), "status": "active", "email": nil, "password": true,
		}})
		if err != nil || !keep {
			t.Fatalf("Transform = %v, %v", keep, err)
		}
		if _, err := json.Marshal(out.Data); err != nil {
			t.Fatalf("output does not encode: %v", err)
		}
	})
}
