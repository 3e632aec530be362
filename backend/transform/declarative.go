package transform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Declarative is the name of the built-in transformer configured by JSON alone.
const Declarative = "declarative"

// MaxDelay bounds the delay of a declarative transformer.
const MaxDelay = 24 * time.Hour

// DeclarativeConfig is the JSON config of the declarative transformer, for example
//
//	{
//	  "drop":       ["password", "remember_token"],
//	  "map_values": {"status": {"values": {"active": 1, "blocked": 0}, "default": 0}},
//	  "rename":     {"email": "user_email", "name": "user_login"},
//	  "set":        {"user_status": 0, "source": "shop"},
//	  "delay":      "5s"
//	}
//
// Every key is optional. The operations run in this order, whatever the order of the keys:
//
//  1. drop: the fields are removed.
//  2. map_values: a field's value is replaced by the entry of "values" whose key is the
//     value's text (a string as it is, a number in its decimal form, true, false, null);
//     a value without an entry becomes "default" when one is given, else stays as it is.
//     Objects and arrays match no entry. A field the row does not have stays absent.
//  3. rename: each field moves to its new name; all renames happen at once (so two fields
//     can swap names), and a renamed field replaces a field already under the new name.
//  4. set: the fields are set to the constant values, present or not.
//
// drop, map_values and rename name fields as captured on the source; set names fields as
// sent. delay is a Go duration ("30s", "2m") of at most MaxDelay: changes are held that
// long after they were captured.
type DeclarativeConfig struct {
	Drop      []string            `json:"drop,omitempty"`
	MapValues map[string]ValueMap `json:"map_values,omitempty"`
	Rename    map[string]string   `json:"rename,omitempty"`
	Set       map[string]any      `json:"set,omitempty"`
	Delay     string              `json:"delay,omitempty"`
}

// ValueMap is one map_values entry: {"values": {from: to, ...}, "default": value}.
type ValueMap struct {
	Values map[string]any
	// Default replaces values without an entry when HasDefault is true (it may be nil:
	// JSON null).
	Default    any
	HasDefault bool
}

// UnmarshalJSON reads {"values": {...}, "default": ...}, refusing other keys.
func (m *ValueMap) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := decodeStrict(data, &raw); err != nil || raw == nil {
		return errors.New(`want {"values": {"from": to, ...}, "default": value}`)
	}
	*m = ValueMap{}
	for k, v := range raw {
		switch k {
		case "values":
			if err := decodeStrict(v, &m.Values); err != nil || m.Values == nil {
				return errors.New(`"values" must be an object of text to value, like {"active": 1}`)
			}
		case "default":
			m.HasDefault = true
			if err := decodeStrict(v, &m.Default); err != nil {
				return fmt.Errorf(`"default": %w`, err)
			}
		default:
			return fmt.Errorf(`unknown key %q (want "values" and optionally "default")`, k)
		}
	}
	if m.Values == nil {
		return errors.New(`"values" is missing`)
	}
	return nil
}

// MarshalJSON writes the entry back in its JSON form.
func (m ValueMap) MarshalJSON() ([]byte, error) {
	out := map[string]any{"values": m.Values}
	if out["values"] == nil {
		out["values"] = map[string]any{}
	}
	if m.HasDefault {
		out["default"] = m.Default
	}
	return json.Marshal(out)
}

// declarativeOps are the keys of a DeclarativeConfig, for error messages.
const declarativeOps = "drop, map_values, rename, set, delay"

// DeclarativeTransformer is the declarative transformer built from a checked config.
type DeclarativeTransformer struct {
	cfg    DeclarativeConfig
	drop   map[string]bool
	delay  time.Duration
	setKey []string // Set's keys, sorted
}

var (
	_ Transformer = (*DeclarativeTransformer)(nil)
	_ Delayer     = (*DeclarativeTransformer)(nil)
)

// ParseDeclarative checks a declarative config strictly and builds its transformer. The
// errors name the operation and field at fault: an unknown operation or key, a value of
// the wrong JSON type, an empty field name, a field dropped and also mapped or renamed,
// two fields renamed to one name, a bad delay. A missing (nil or null) config is refused:
// the declarative transformer needs one.
func ParseDeclarative(config json.RawMessage) (*DeclarativeTransformer, error) {
	if isNull(config) {
		return nil, fmt.Errorf("the declarative transformer needs a config object with any of %s", declarativeOps)
	}
	var raw map[string]json.RawMessage
	if err := decodeStrict(config, &raw); err != nil || raw == nil {
		return nil, fmt.Errorf("config must be a JSON object with any of %s", declarativeOps)
	}
	var cfg DeclarativeConfig
	for _, op := range slices.Sorted(maps.Keys(raw)) {
		v := raw[op]
		var err error
		switch op {
		case "drop":
			if err = decodeStrict(v, &cfg.Drop); err != nil {
				err = errors.New(`want a list of field names, like ["password"]`)
			}
		case "map_values":
			cfg.MapValues, err = decodeMapValues(v)
		case "rename":
			if err = decodeStrict(v, &cfg.Rename); err != nil {
				err = errors.New(`want an object of field to new name, like {"email": "user_email"}`)
			}
		case "set":
			if err = decodeStrict(v, &cfg.Set); err != nil || cfg.Set == nil && !isNull(v) {
				err = errors.New(`want an object of field to value, like {"source": "shop"}`)
			}
		case "delay":
			if err = decodeStrict(v, &cfg.Delay); err != nil {
				err = errors.New(`want a duration string, like "30s"`)
			}
		default:
			return nil, fmt.Errorf("unknown operation %q (want %s)", op, declarativeOps)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	return NewDeclarative(cfg)
}

// NewDeclarative checks cfg (see ParseDeclarative) and builds its transformer.
func NewDeclarative(cfg DeclarativeConfig) (*DeclarativeTransformer, error) {
	t := &DeclarativeTransformer{cfg: cfg, drop: make(map[string]bool, len(cfg.Drop))}
	for _, f := range cfg.Drop {
		if f == "" {
			return nil, errors.New("drop: empty field name")
		}
		if t.drop[f] {
			return nil, fmt.Errorf("drop: %q is listed twice", f)
		}
		t.drop[f] = true
	}
	for _, f := range slices.Sorted(maps.Keys(cfg.MapValues)) {
		switch {
		case f == "":
			return nil, errors.New("map_values: empty field name")
		case t.drop[f]:
			return nil, fmt.Errorf("map_values: %q is also dropped", f)
		}
		if m := cfg.MapValues[f]; len(m.Values) == 0 && !m.HasDefault {
			return nil, fmt.Errorf("map_values.%s: no values and no default", f)
		}
	}
	targets := make(map[string]string, len(cfg.Rename))
	for _, f := range slices.Sorted(maps.Keys(cfg.Rename)) {
		to := cfg.Rename[f]
		switch {
		case f == "":
			return nil, errors.New("rename: empty field name")
		case to == "":
			return nil, fmt.Errorf("rename: %q is renamed to an empty name", f)
		case to == f:
			return nil, fmt.Errorf("rename: %q is renamed to itself", f)
		case t.drop[f]:
			return nil, fmt.Errorf("rename: %q is also dropped", f)
		case targets[to] != "":
			return nil, fmt.Errorf("rename: %q and %q are both renamed to %q", targets[to], f, to)
		}
		targets[to] = f
	}
	for f := range cfg.Set {
		if f == "" {
			return nil, errors.New("set: empty field name")
		}
	}
	t.setKey = slices.Sorted(maps.Keys(cfg.Set))
	if cfg.Delay != "" {
		d, err := time.ParseDuration(cfg.Delay)
		switch {
		case err != nil:
			return nil, fmt.Errorf(`delay: %q is not a duration like "30s" or "2m"`, cfg.Delay)
		case d < 0 || d > MaxDelay:
			return nil, fmt.Errorf("delay: %s is not between 0 and %s", cfg.Delay, MaxDelay)
		}
		t.delay = d
	}
	return t, nil
}

// Config returns the transformer's config.
func (t *DeclarativeTransformer) Config() DeclarativeConfig { return t.cfg }

// Delay returns the configured delay.
func (t *DeclarativeTransformer) Delay() time.Duration { return t.delay }

// Transform applies drop, map_values, rename and set, in that order, to a copy of c.Data.
func (t *DeclarativeTransformer) Transform(_ context.Context, c Change) (Change, bool, error) {
	out := make(map[string]any, len(c.Data)+len(t.setKey))
	var renamed map[string]any
	for f, v := range c.Data {
		if t.drop[f] {
			continue
		}
		if m, ok := t.cfg.MapValues[f]; ok {
			v = m.apply(v)
		}
		if to, ok := t.cfg.Rename[f]; ok {
			if renamed == nil {
				renamed = make(map[string]any, len(t.cfg.Rename))
			}
			renamed[to] = v
			continue
		}
		out[f] = v
	}
	maps.Copy(out, renamed)
	for _, f := range t.setKey {
		out[f] = deepCopy(t.cfg.Set[f])
	}
	c.Data = out
	return c, true, nil
}

// decodeMapValues reads map_values field by field, so that an error names its field.
func decodeMapValues(v json.RawMessage) (map[string]ValueMap, error) {
	var fields map[string]json.RawMessage
	if err := decodeStrict(v, &fields); err != nil || fields == nil && !isNull(v) {
		return nil, errors.New(`want an object of field to {"values": {...}, "default": ...}`)
	}
	out := make(map[string]ValueMap, len(fields))
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		var m ValueMap
		if err := m.UnmarshalJSON(fields[f]); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out[f] = m
	}
	return out, nil
}

// apply maps one value.
func (m ValueMap) apply(v any) any {
	if text, ok := valueText(v); ok {
		if to, ok := m.Values[text]; ok {
			return deepCopy(to)
		}
	}
	if m.HasDefault {
		return deepCopy(m.Default)
	}
	return v
}

// valueText is the text a scalar value is matched by in map_values.
func valueText(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "null", true
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	}
	return "", false
}

// deepCopy copies decoded JSON, so that changes never share maps or slices with the config.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}
