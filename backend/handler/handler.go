// Package handler writes received records on the target platform in a way of their own:
// Moox Sync's sync handlers (AbstractSyncHandler with syncModel and deleteModel, bound to
// models by sync_bindings).
//
// A Handler is Go code registered by name in a Registry. The agent config's sync_bindings
// bind a target model to a handler (with an optional config); apply then hands every
// change of a sync into that model to the handler, inside the batch's one transaction,
// instead of writing the target table itself. Models without a binding take apply's
// default path.
//
// The built-in "meta" handler needs no code: it writes a main table plus a key/value meta
// table, the shape of WordPress's wp_users and wp_usermeta (see MetaConfig); "wp_user" is
// the same handler preset for WordPress.
//
// Integration: the agent passes its Registry (Default, plus its own Register calls) and
// its sync_bindings to apply.Config, checks them at start with apply.Config.Validate, and
// reports Registry.Names().
package handler

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
	"unicode"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// Handler writes the records of one target model. apply calls it for each change of a
// batch, in order, inside the batch's transaction, after the change was checked and mapped
// onto the target's fields (field mappings applied, local identifier fields dropped), with
// the origin marker already set, so that the handler's writes are never echoed back. An
// error rolls the whole batch back. A Handler serves batches of several syncs at once, so
// it must be safe for concurrent use.
//
// Keys: key.Field is the target field the record is matched by (one of Schema.Keys) and
// key.Value its value (a string or json.Number).
type Handler interface {
	// Check validates the handler against the live schema of db for the target model and
	// returns what it reads and writes. apply calls it before every batch; it must not
	// write. A schema that does not fit is a *protocol.Error with CodeUnknownModel or
	// CodeUnknownColumn.
	Check(ctx context.Context, db *sqldb.DB, target string) (Schema, error)
	// Exists reports whether the record exists (if_exists skip and error ask it first).
	Exists(ctx context.Context, tx *Tx, target string, key protocol.Key) (bool, error)
	// Sync creates or updates the record from row (target field -> value; it holds the key
	// field) and reports whether it created it.
	Sync(ctx context.Context, tx *Tx, target string, key protocol.Key, row map[string]any) (inserted bool, err error)
	// Delete removes the record and reports whether there was one.
	Delete(ctx context.Context, tx *Tx, target string, key protocol.Key) (deleted bool, err error)
}

// Schema is what a handler accepts for a target model.
type Schema struct {
	// Fields are the target fields a row may carry. A change with any other field is
	// refused before anything is written (CodeUnknownColumn), as for a plain table.
	Fields []string
	// Keys are the fields a record may be matched by; a change keyed by another field is
	// refused (CodeBadRequest). Empty: any of Fields.
	Keys []string
	// Tables are the application tables the handler writes; apply re-reads their schema
	// when a field is unknown (a migration may have added it).
	Tables []string
}

// Tx is the apply transaction a handler works in: the Writer for checked writes, and the
// database for its schema (Model) and Dialect. Statements the Writer does not cover go
// through Writer.Tx(), with names taken from the introspected schema and quoted by the
// Dialect, and every value bound as a parameter. Never use DB.SQL() for writes: that is
// outside the transaction.
type Tx struct {
	*sqldb.Writer
	DB *sqldb.DB
}

// Factory builds a Handler from its binding's config (nil when the binding gives none). It
// returns a clear error for a config it does not accept.
type Factory func(config json.RawMessage) (Handler, error)

// Registry holds handler factories by name. It is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// Default returns a new Registry with the built-in handlers: Meta and WPUser. The agent
// adds its own Go handlers to it with Register.
func Default() *Registry {
	r := NewRegistry()
	r.Register(Meta, func(config json.RawMessage) (Handler, error) { return ParseMeta(config) })
	r.Register(WPUser, func(config json.RawMessage) (Handler, error) { return ParseWPUser(config) })
	return r
}

// Register adds a factory under name. It panics when name is empty, holds spaces or
// control characters, or is registered already: those are programming errors.
func (r *Registry) Register(name string, f Factory) {
	switch {
	case name == "" || strings.ContainsFunc(name, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }):
		panic(fmt.Sprintf("handler: register %q: not a valid name", name))
	case f == nil:
		panic("handler: register " + name + ": nil factory")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[name]; dup {
		panic("handler: register " + name + ": registered twice")
	}
	r.factories[name] = f
}

// Names returns the registered names, sorted: what the agent reports.
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

// Errors of Registry.New.
var (
	ErrUnknown   = errors.New("unknown sync handler")
	ErrBadConfig = errors.New("bad sync handler config")
)

// New builds the handler a binding names. An unknown name is ErrUnknown, a config the
// handler refuses ErrBadConfig; both errors name the handler.
func (r *Registry) New(b Binding) (Handler, error) {
	f, ok := r.Lookup(b.Handler)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not registered on this agent (registered: %s)",
			ErrUnknown, b.Handler, strings.Join(r.Names(), ", "))
	}
	config := b.Config
	if isNull(config) {
		config = nil
	}
	h, err := f(config)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadConfig, b.Handler, err)
	}
	if h == nil {
		return nil, fmt.Errorf("%w: %s: the factory built no handler", ErrBadConfig, b.Handler)
	}
	return h, nil
}

// Binding is one sync_bindings entry of the agent config: the handler that writes a target
// model. In JSON it is the handler's name, or an object with its config:
//
//	"wp_users": "wp_user"
//	"wp_users": {"handler": "meta", "config": {"meta_table": "wp_usermeta", ...}}
type Binding struct {
	Handler string          `json:"handler"`
	Config  json.RawMessage `json:"config,omitempty"`
}

// UnmarshalJSON accepts a name or {"handler": ..., "config": ...}, refusing unknown fields.
func (b *Binding) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		*b = Binding{}
		return json.Unmarshal(data, &b.Handler)
	}
	type plain Binding
	var p plain
	if err := decodeStrict(data, &p); err != nil {
		return fmt.Errorf("sync binding: want a handler name or {\"handler\": name, \"config\": {...}}: %w", err)
	}
	*b = Binding(p)
	return nil
}

// MarshalJSON writes a binding without config as its name.
func (b Binding) MarshalJSON() ([]byte, error) {
	if isNull(b.Config) {
		return json.Marshal(b.Handler)
	}
	type plain Binding
	return json.Marshal(plain(b))
}

// Bindings turns name-only bindings (model -> handler name, as Moox's sync_bindings are)
// into Bindings.
func Bindings(names map[string]string) map[string]Binding {
	out := make(map[string]Binding, len(names))
	for model, name := range names {
		out[model] = Binding{Handler: name}
	}
	return out
}

// decodeStrict decodes one JSON value, numbers as json.Number, refusing unknown fields and
// trailing data.
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
