// Package transform changes captured rows on the source platform before they are
// delivered: Moox Sync's transformers (use_transformer_class) and transformer bindings.
//
// A Transformer is Go code registered by name in a Registry; the agent builds one per sync
// and the sender runs every change of that sync through it. Which one a sync uses:
//
//  1. the sync's use_transformer_class, with its transformer_config (docs/protocol.md
//     section 9), when it names one;
//  2. else the agent's transformer_bindings entry for the sync's source model;
//  3. else none: rows go out as captured.
//
// The built-in "declarative" transformer needs no code: its JSON config renames, drops,
// sets and maps fields (see ParseDeclarative). Default returns a Registry holding it and
// the example "lowercase_email".
//
// Integration: the agent calls Validate for every sync it is the source of when a state is
// pushed (a bad name or config refuses the state), ValidateBindings for its config at
// start, ForSync when it starts a sync's sender, and the sender runs Image on each row
// image before it encodes it, holding a change until ChangedAt + DelayOf(t).
package transform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// Change is one captured row change as a transformer sees it.
type Change struct {
	// SyncID and TargetPlatformID say which sync (and so which target) the change is being
	// prepared for; a row delivered to two targets is transformed once for each.
	SyncID           int64
	TargetPlatformID int64
	// Model is the source model (table) the row belongs to.
	Model string
	// Event is protocol.EventCreated, EventUpdated or EventDeleted.
	Event string
	// Data is the row image in sqldb's canonical form (numbers json.Number, datetimes RFC
	// 3339 strings, booleans bool, JSON documents decoded). For a deleted event it is the
	// row as it was: only its key is sent, and the key is looked up in the transformed
	// Data, so renaming or dropping a key field changes which key the target matches by.
	Data map[string]any
	// ChangedAt is when the change was captured.
	ChangedAt time.Time
}

// Transformer transforms changes of one sync on the source. keep false drops the change:
// it is not sent (and counts as delivered). An error leaves the change unsent; the sender
// retries it later, and the changes after it in the sync wait for it. Transform may
// modify c.Data in place and return it. A Transformer is used by one sender goroutine at a
// time, but one registered Factory builds Transformers for several syncs.
type Transformer interface {
	Transform(ctx context.Context, c Change) (out Change, keep bool, err error)
}

// Delayer is implemented by transformers whose changes must wait before they are sent (to
// let related rows settle, as Moox's delayed transformer jobs did): the sender holds a
// change until ChangedAt + Delay(). Changes of a sync go out in order, so the wait holds
// those behind it too.
type Delayer interface {
	Delay() time.Duration
}

// DelayOf returns how long t holds changes back; 0 when t is nil or has no delay.
func DelayOf(t Transformer) time.Duration {
	if d, ok := t.(Delayer); ok {
		return max(d.Delay(), 0)
	}
	return 0
}

// Func adapts a function to the Transformer interface.
type Func func(ctx context.Context, c Change) (Change, bool, error)

// Transform calls f.
func (f Func) Transform(ctx context.Context, c Change) (Change, bool, error) { return f(ctx, c) }

// Factory builds a Transformer from its config: the sync's transformer_config or the
// binding's config, nil when none is given. It returns a clear error for a config it does
// not accept; factories of transformers that take no config should refuse one.
type Factory func(config json.RawMessage) (Transformer, error)

// Registry holds transformer factories by name. It is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// Default returns a new Registry with the built-in transformers: Declarative and
// LowercaseEmail. The agent adds its own Go transformers to it with Register.
func Default() *Registry {
	r := NewRegistry()
	r.Register(Declarative, func(config json.RawMessage) (Transformer, error) { return ParseDeclarative(config) })
	r.Register(LowercaseEmail, NewLowercaseEmail)
	return r
}

// Register adds a factory under name. It panics when name is not a valid name (1-255
// characters, no spaces or control characters, as the catalog requires of
// use_transformer_class) or is registered already: both are programming errors.
func (r *Registry) Register(name string, f Factory) {
	if err := checkName(name); err != nil {
		panic("transform: register: " + err.Error())
	}
	if f == nil {
		panic("transform: register " + name + ": nil factory")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[name]; dup {
		panic("transform: register " + name + ": registered twice")
	}
	r.factories[name] = f
}

// Names returns the registered names, sorted: what the agent reports and the GUI offers.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.factories))
}

// Lookup returns the factory registered under name.
func (r *Registry) Lookup(name string) (Factory, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.factories[name]
	return f, ok
}

// New builds the transformer registered under name with config (nil or JSON null: none).
// An unknown name is ErrUnknown; a config the transformer refuses is ErrBadConfig.
func (r *Registry) New(name string, config json.RawMessage) (Transformer, error) {
	f, ok := r.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not registered on this agent (registered: %s)",
			ErrUnknown, name, strings.Join(r.Names(), ", "))
	}
	if isNull(config) {
		config = nil
	}
	t, err := f(config)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadConfig, name, err)
	}
	if t == nil {
		return nil, fmt.Errorf("%w: %s: the factory built no transformer", ErrBadConfig, name)
	}
	return t, nil
}

// Errors of Registry.New, ForSync and Validate.
var (
	ErrUnknown   = errors.New("unknown transformer")
	ErrBadConfig = errors.New("bad transformer config")
)

// Binding is one transformer_bindings entry of the agent config: the transformer applied
// to a source model when a sync names none. In JSON it is the transformer's name, or an
// object with its config:
//
//	"users": "lowercase_email"
//	"users": {"transformer": "declarative", "config": {"drop": ["password"]}}
type Binding struct {
	Transformer string          `json:"transformer"`
	Config      json.RawMessage `json:"config,omitempty"`
}

// UnmarshalJSON accepts a name or {"transformer": ..., "config": ...}, refusing unknown
// fields.
func (b *Binding) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		*b = Binding{}
		return json.Unmarshal(data, &b.Transformer)
	}
	type plain Binding
	var p plain
	if err := decodeStrict(data, &p); err != nil {
		return fmt.Errorf("transformer binding: want a transformer name or {\"transformer\": name, \"config\": {...}}: %w", err)
	}
	*b = Binding(p)
	return nil
}

// MarshalJSON writes a binding without config as its name.
func (b Binding) MarshalJSON() ([]byte, error) {
	if isNull(b.Config) {
		return json.Marshal(b.Transformer)
	}
	type plain Binding
	return json.Marshal(plain(b))
}

// ValidateBindings builds every binding once and returns all failures, naming the model
// of each: the agent calls it on its config at start.
func ValidateBindings(r *Registry, bindings map[string]Binding) error {
	var errs []error
	for _, model := range slices.Sorted(maps.Keys(bindings)) {
		b := bindings[model]
		if _, err := r.New(b.Transformer, b.Config); err != nil {
			errs = append(errs, fmt.Errorf("transformer_bindings[%q]: %w", model, err))
		}
	}
	return errors.Join(errs...)
}

// ForSync builds the transformer sync s uses on its source (see the package comment), or
// returns nil when it uses none. transformer_config without use_transformer_class is an
// error.
func ForSync(r *Registry, s protocol.Sync, bindings map[string]Binding) (Transformer, error) {
	name, config, err := perSync(s)
	if err != nil {
		return nil, err
	}
	if name != "" {
		t, err := r.New(name, config)
		if err != nil {
			return nil, fmt.Errorf("sync %d: use_transformer_class: %w", s.ID, err)
		}
		return t, nil
	}
	b, ok := bindings[s.SourceModel]
	if !ok {
		return nil, nil
	}
	t, err := r.New(b.Transformer, b.Config)
	if err != nil {
		return nil, fmt.Errorf("sync %d: transformer_bindings[%q]: %w", s.ID, s.SourceModel, err)
	}
	return t, nil
}

// Validate checks the transformer sync s names itself (use_transformer_class and
// transformer_config; bindings are checked by ValidateBindings): the name must be
// registered and its config accepted. The error is a *protocol.Error with CodeBadRequest
// naming the sync and the transformer, ready for a 400 answer to PUT /api/state.
func Validate(r *Registry, s protocol.Sync) error {
	name, config, err := perSync(s)
	if err == nil && name != "" {
		if _, err = r.New(name, config); err != nil {
			err = fmt.Errorf("use_transformer_class: %w", err)
		}
	}
	if err == nil {
		return nil
	}
	if s.Title != "" {
		return protocol.Errorf(protocol.CodeBadRequest, "sync %d (%s): %s", s.ID, s.Title, err)
	}
	return protocol.Errorf(protocol.CodeBadRequest, "sync %d: %s", s.ID, err)
}

// perSync returns the transformer name and config sync s names itself ("" when none).
func perSync(s protocol.Sync) (string, json.RawMessage, error) {
	name := ""
	if s.UseTransformerClass != nil {
		name = strings.TrimSpace(*s.UseTransformerClass)
	}
	if name == "" && !isNull(s.TransformerConfig) {
		return "", nil, fmt.Errorf("%w: transformer_config is set but use_transformer_class names no transformer", ErrBadConfig)
	}
	return name, s.TransformerConfig, nil
}

// Image runs t over a row image as the capture queue stores it (a JSON object) and
// returns the image to send in its place. c carries the change's other fields; c.Data is
// replaced by the decoded image. keep false: the change is not sent. A nil t returns
// image unchanged.
func Image(ctx context.Context, t Transformer, c Change, image []byte) (out []byte, keep bool, err error) {
	if t == nil {
		return image, true, nil
	}
	c.Data = nil
	if err := decodeStrict(image, &c.Data); err != nil || c.Data == nil {
		return nil, false, fmt.Errorf("transform %s change: row image is not a JSON object", c.Model)
	}
	c, keep, err = t.Transform(ctx, c)
	if err != nil || !keep {
		return nil, keep, err
	}
	if c.Data == nil {
		c.Data = map[string]any{}
	}
	out, err = json.Marshal(c.Data)
	if err != nil {
		return nil, false, fmt.Errorf("transform %s change: encode row: %w", c.Model, err)
	}
	return out, true, nil
}

// decodeStrict decodes one JSON value, numbers as json.Number, refusing unknown fields of
// structs and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// checkName reports whether name can be a transformer (or handler) name.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len([]rune(name)) > 255:
		return fmt.Errorf("name %.20q... is longer than 255 characters", name)
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Errorf("name %q contains spaces or control characters", name)
	}
	return nil
}
