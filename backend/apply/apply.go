// Package apply writes received batches into the target platform's application database:
// Moox Sync's SyncJob and SyncService (default handler).
//
// A batch is checked completely before anything is written (the sync's model, the target
// table, every mapped column against the live schema), then applied in one transaction
// that also records (sync_id, batch_id) in mooxsync_applied, so a batch is applied exactly
// once however often it is delivered.
//
// A target model bound to a sync handler (Config.SyncBindings, Moox's sync_bindings) is
// written by that handler instead (backend/handler), inside the same transaction and with
// the same exactly-once record: the handler's Check tells which fields and keys the model
// accepts, and each change goes to its Sync or Delete.
package apply

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/mooxsync/mooxsync/backend/handler"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// Moox Sync's defaults (sync.php).
var (
	DefaultUniqueIdentifierFields = []string{"ulid", "uuid", "slug", "name", "title"}
	DefaultLocalIdentifierFields  = []string{"ID", "uuid", "ulid", "id"}
)

// Config holds the identifier settings and sync bindings of Moox's sync.php.
type Config struct {
	// UniqueIdentifierFields are the fields a record may be matched by across platforms, in
	// order of preference. Default: ulid, uuid, slug, name, title.
	UniqueIdentifierFields []string
	// LocalIdentifierFields are fields that identify a record only on its own platform
	// (auto-increment ids). Default: ID, uuid, ulid, id.
	LocalIdentifierFields []string
	// Handlers holds the sync handlers that SyncBindings may name. Default: handler.Default().
	Handlers *handler.Registry
	// SyncBindings binds target models to sync handlers (Moox sync_bindings): the changes
	// of every sync into such a model are written by its handler. Models without a binding
	// are written by the default path.
	SyncBindings map[string]handler.Binding
}

// Validate builds every sync binding once and returns all failures, naming the model of
// each: an unknown handler name, a config its handler refuses. The agent calls it on its
// config at start. (Whether a handler fits the live schema is checked with each batch.)
func (c Config) Validate() error {
	_, errs := c.buildHandlers()
	var all []error
	for _, model := range slices.Sorted(maps.Keys(errs)) {
		all = append(all, errs[model])
	}
	return errors.Join(all...)
}

// buildHandlers builds the handler of every binding; failures are returned per model.
func (c Config) buildHandlers() (map[string]handler.Handler, map[string]error) {
	reg := c.Handlers
	if reg == nil {
		reg = handler.Default()
	}
	hs := make(map[string]handler.Handler, len(c.SyncBindings))
	var errs map[string]error
	for _, model := range slices.Sorted(maps.Keys(c.SyncBindings)) {
		h, err := reg.New(c.SyncBindings[model])
		if err != nil {
			if errs == nil {
				errs = map[string]error{}
			}
			errs[model] = fmt.Errorf("sync_bindings[%q]: %w", model, err)
			continue
		}
		hs[model] = h
	}
	return hs, errs
}

// Result counts what a batch did.
type Result struct {
	// AlreadyApplied is true when the batch had been applied before; nothing was written.
	AlreadyApplied bool `json:"already_applied"`
	Inserted       int  `json:"inserted"`
	Updated        int  `json:"updated"` // includes rows that already had the values
	Deleted        int  `json:"deleted"`
	// Skipped counts rows left alone: existing rows under if_exists "skip", and deletes of
	// rows that were not there.
	Skipped int `json:"skipped"`
}

// Applier applies batches to one application database. It is safe for concurrent use;
// batches of one sync must still be applied in order by the caller.
type Applier struct {
	db       *sqldb.DB
	unique   map[string]bool
	local    map[string]bool
	handlers map[string]handler.Handler // by target model
	bindErr  map[string]error           // bindings that failed to build, by target model

	mu    sync.Mutex
	ready bool // mooxsync's tables exist
}

// New returns an Applier writing to db. Empty lists in cfg take Moox's defaults. A sync
// binding that fails to build (see Config.Validate, which the caller should check first)
// makes every batch into its model fail with that error.
func New(db *sqldb.DB, cfg Config) *Applier {
	if len(cfg.UniqueIdentifierFields) == 0 {
		cfg.UniqueIdentifierFields = DefaultUniqueIdentifierFields
	}
	if len(cfg.LocalIdentifierFields) == 0 {
		cfg.LocalIdentifierFields = DefaultLocalIdentifierFields
	}
	hs, errs := cfg.buildHandlers()
	return &Applier{db: db, unique: set(cfg.UniqueIdentifierFields), local: set(cfg.LocalIdentifierFields),
		handlers: hs, bindErr: errs}
}

func set(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// step is one change, checked and mapped onto the target table.
type step struct {
	delete bool
	key    string // target key column
	value  any    // key value
	lay    *layout
	vals   []any // one per lay.cols; nil for a delete
	origin int64
}

// layout is the target columns of consecutive changes that carry the same fields, so that
// their values travel as slices and are written by multi-row statements.
type layout struct {
	cols   []string
	index  map[string]int
	keyIdx int
}

func (st step) row() map[string]any {
	m := make(map[string]any, len(st.vals))
	for i, c := range st.lay.cols {
		m[c] = st.vals[i]
	}
	return m
}

// CheckBatch validates b for s without writing anything: every change must name the sync's
// source model (it is applied to s.TargetModel), the target table must exist, and every
// mapped column must exist in its live schema (*protocol.Error CodeUnknownModel /
// CodeUnknownColumn); keys must use a unique identifier field (CodeBadRequest). For a model
// bound to a sync handler, the handler's Check must pass against the live schema and
// stands in for the table: mapped fields must be among its fields, keys among its keys.
func (a *Applier) CheckBatch(ctx context.Context, s protocol.Sync, b *protocol.Batch) error {
	_, err := a.plan(ctx, s, b)
	return err
}

// ApplyBatch applies b for s in one transaction (see the package comment). When the batch
// was applied before it returns Result{AlreadyApplied: true} and writes nothing. Under
// if_exists "error" an existing row fails the whole batch with CodeConflict, and nothing
// of it is written.
func (a *Applier) ApplyBatch(ctx context.Context, s protocol.Sync, b *protocol.Batch) (Result, error) {
	steps, err := a.plan(ctx, s, b)
	if err != nil {
		return Result{}, err
	}
	if err := a.ensureTables(ctx); err != nil {
		return Result{}, err
	}
	w, err := a.db.BeginWrite(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("apply batch %s: %w", b.BatchID, err)
	}
	defer w.Rollback()
	fresh, err := w.MarkApplied(ctx, s.ID, b.BatchID)
	if err != nil {
		return Result{}, fmt.Errorf("apply batch %s: %w", b.BatchID, err)
	}
	if !fresh {
		return Result{AlreadyApplied: true}, nil
	}
	var res Result
	if h := a.handlers[s.TargetModel]; h != nil {
		res, err = a.writeHandled(ctx, w, s, h, steps)
	} else {
		res, err = a.write(ctx, w, s, steps)
	}
	if err != nil {
		return Result{}, fmt.Errorf("apply batch %s: %w", b.BatchID, err)
	}
	if err := w.Commit(); err != nil {
		return Result{}, fmt.Errorf("apply batch %s: %w", b.BatchID, err)
	}
	return res, nil
}

func (a *Applier) write(ctx context.Context, w *sqldb.Writer, s protocol.Sync, steps []step) (Result, error) {
	var res Result
	upsert := s.IfExists == "" || s.IfExists == protocol.IfExistsUpdate
	for i := 0; i < len(steps); {
		st := steps[i]
		// Consecutive changes of one origin share the marker: SetOrigin is free when unchanged.
		if err := w.SetOrigin(ctx, st.origin); err != nil {
			return res, err
		}
		if upsert && !st.delete {
			// A run of upserts with one origin, key and layout goes out as multi-row statements.
			j := i + 1
			for j < len(steps) && !steps[j].delete && steps[j].origin == st.origin && steps[j].lay == st.lay {
				j++
			}
			values := make([][]any, j-i)
			for k := range values {
				values[k] = steps[i+k].vals
			}
			ins, upd, err := w.UpsertRows(ctx, s.TargetModel, st.key, st.lay.cols, values)
			res.Inserted += ins
			res.Updated += upd
			if err != nil {
				return res, fmt.Errorf("changes %d-%d: %w", i, j-1, err)
			}
			keys := make([]string, j-i)
			for k := range keys {
				keys[k] = sqldb.KeyText(steps[i+k].value)
			}
			if err := w.MarkOwned(ctx, s.ID, s.TargetModel, keys); err != nil {
				return res, fmt.Errorf("changes %d-%d: %w", i, j-1, err)
			}
			i = j
			continue
		}
		if err := a.writeOne(ctx, w, s, st, &res); err != nil {
			return res, fmt.Errorf("change %d: %w", i, err)
		}
		i++
	}
	return res, nil
}

// writeOne applies a delete, or an insert under if_exists skip or error.
func (a *Applier) writeOne(ctx context.Context, w *sqldb.Writer, s protocol.Sync, st step, res *Result) error {
	if st.delete {
		n, err := w.Delete(ctx, s.TargetModel, st.key, st.value)
		if err != nil {
			return err
		}
		if err := w.Disown(ctx, s.TargetModel, []string{sqldb.KeyText(st.value)}); err != nil {
			return err
		}
		if n == 0 {
			res.Skipped++
		}
		res.Deleted += int(n)
		return nil
	}
	inserted, err := w.InsertIfAbsent(ctx, s.TargetModel, st.key, st.row())
	switch {
	case err != nil:
		return err
	case inserted:
		res.Inserted++
		return w.MarkOwned(ctx, s.ID, s.TargetModel, []string{sqldb.KeyText(st.value)})
	case s.IfExists == protocol.IfExistsError:
		return protocol.Errorf(protocol.CodeConflict,
			"%s %s=%v exists on the target and the sync's if_exists is error", s.TargetModel, st.key, st.value)
	default:
		res.Skipped++
	}
	return nil
}

// writeHandled applies the steps of a model bound to handler h, one change at a time.
func (a *Applier) writeHandled(ctx context.Context, w *sqldb.Writer, s protocol.Sync, h handler.Handler, steps []step) (Result, error) {
	var res Result
	tx := &handler.Tx{Writer: w, DB: a.db}
	for i, st := range steps {
		if err := w.SetOrigin(ctx, st.origin); err != nil {
			return res, err
		}
		if err := a.handleOne(ctx, tx, s, h, st, &res); err != nil {
			return res, fmt.Errorf("change %d: %w", i, err)
		}
	}
	return res, nil
}

// handleOne hands one change to h, honouring if_exists.
func (a *Applier) handleOne(ctx context.Context, tx *handler.Tx, s protocol.Sync, h handler.Handler, st step, res *Result) error {
	key := protocol.Key{Field: st.key, Value: st.value}
	if st.delete {
		deleted, err := h.Delete(ctx, tx, s.TargetModel, key)
		switch {
		case err != nil:
			return err
		case deleted:
			res.Deleted++
		default:
			res.Skipped++
		}
		return nil
	}
	if s.IfExists == protocol.IfExistsSkip || s.IfExists == protocol.IfExistsError {
		exists, err := h.Exists(ctx, tx, s.TargetModel, key)
		switch {
		case err != nil:
			return err
		case exists && s.IfExists == protocol.IfExistsError:
			return protocol.Errorf(protocol.CodeConflict,
				"%s %s=%v exists on the target and the sync's if_exists is error", s.TargetModel, st.key, st.value)
		case exists:
			res.Skipped++
			return nil
		}
	}
	inserted, err := h.Sync(ctx, tx, s.TargetModel, key, st.row())
	switch {
	case err != nil:
		return err
	case inserted:
		res.Inserted++
	default:
		res.Updated++
	}
	return nil
}

// plan checks the whole batch and maps every change onto the target table. A column the
// cached schema does not know sends it to the live schema once more before it is refused:
// a migration may have added it.
func (a *Applier) plan(ctx context.Context, s protocol.Sync, b *protocol.Batch) ([]step, error) {
	steps, tables, err := a.planOnce(ctx, s, b)
	if protocol.CodeOf(err) == protocol.CodeUnknownColumn {
		if tables == nil {
			a.db.Refresh("") // a handler's schema did not load: which tables it reads is unknown
		}
		for _, t := range tables {
			a.db.Refresh(t)
		}
		steps, _, err = a.planOnce(ctx, s, b)
	}
	return steps, err
}

// fields returns what the target model accepts: the columns of its table, or the fields of
// its sync handler, with the keys it may be matched by (nil: any column) and the tables
// they come from (nil: unknown).
func (a *Applier) fields(ctx context.Context, target string) (cols, keys map[string]bool, tables []string, err error) {
	if err := a.bindErr[target]; err != nil {
		return nil, nil, nil, err
	}
	if h := a.handlers[target]; h != nil {
		sch, err := h.Check(ctx, a.db, target)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sync handler of %q: %w", target, err)
		}
		if len(sch.Keys) > 0 {
			keys = set(sch.Keys)
		}
		return set(sch.Fields), keys, sch.Tables, nil
	}
	model, err := a.db.Model(ctx, target)
	if err != nil {
		return nil, nil, []string{target}, err
	}
	cols = make(map[string]bool, len(model.Columns))
	for _, c := range model.Columns {
		cols[c.Name] = true
	}
	return cols, nil, []string{target}, nil
}

// planOnce plans the batch against the schema as cached; it also returns the tables that
// schema came from (nil: unknown).
func (a *Applier) planOnce(ctx context.Context, s protocol.Sync, b *protocol.Batch) ([]step, []string, error) {
	if b == nil {
		return nil, nil, protocol.Errorf(protocol.CodeBadRequest, "no batch")
	}
	if b.SyncID != s.ID {
		return nil, nil, protocol.Errorf(protocol.CodeBadRequest, "batch is for sync %d, not %d", b.SyncID, s.ID)
	}
	switch s.IfExists {
	case "", protocol.IfExistsUpdate, protocol.IfExistsSkip, protocol.IfExistsError:
	default:
		return nil, nil, protocol.Errorf(protocol.CodeBadRequest, "sync %d: if_exists %q is not update, skip or error", s.ID, s.IfExists)
	}
	cols, keys, tables, err := a.fields(ctx, s.TargetModel)
	if err != nil {
		return nil, tables, err
	}
	m := mapper{a: a, s: s, columns: cols, keys: keys, shared: sharedTargets(s), memo: map[string]string{}}
	steps := make([]step, len(b.Changes))
	var lay *layout
	for i := range b.Changes {
		c := &b.Changes[i]
		if c.Model != s.SourceModel {
			return nil, tables, protocol.Errorf(protocol.CodeUnknownModel,
				"change %d is for model %q, sync %d syncs %q", i, c.Model, s.ID, s.SourceModel)
		}
		st, err := m.mapChange(c, lay)
		if err != nil {
			return nil, tables, fmt.Errorf("change %d: %w", i, err)
		}
		if st.lay != nil {
			lay = st.lay
		}
		if st.origin == 0 {
			st.origin = b.SourcePlatformID
		}
		steps[i] = st
	}
	return steps, tables, nil
}

// targetField maps a source field to its target column: itself when the sync syncs all
// fields (field_mappings are then not consulted), else its field mapping; ok is false when
// the field is not synced.
func targetField(s protocol.Sync, field string) (string, bool) {
	if s.SyncAllFields {
		return field, true
	}
	t, ok := s.FieldMappings[field]
	return t, ok && t != ""
}

// sharedTargets returns the target columns that more than one source field maps to.
func sharedTargets(s protocol.Sync) map[string]bool {
	if s.SyncAllFields {
		return nil
	}
	seen := map[string]bool{}
	var shared map[string]bool
	for _, t := range s.FieldMappings {
		if seen[t] {
			if shared == nil {
				shared = map[string]bool{}
			}
			shared[t] = true
		}
		seen[t] = true
	}
	return shared
}

// mapper maps the changes of one batch onto the target table.
type mapper struct {
	a       *Applier
	s       protocol.Sync
	columns map[string]bool // the target table's columns, or its sync handler's fields
	keys    map[string]bool // the fields its sync handler matches records by; nil: any column
	shared  map[string]bool // target columns that several source fields map to
	memo    map[string]string
}

// target returns the target column of data field f of c, or "" when f does not sync.
//
// Local identifier fields are dropped so that auto-increment ids never cross platforms.
// Moox's default local list also names uuid and ulid; a field that is also a unique
// identifier field is a cross-platform identity, generated where the record was born, so
// it is kept, and the field a change is matched by is never dropped. With the defaults
// this drops ID and id and keeps uuid and ulid.
func (m *mapper) target(c *protocol.Change, f string) (string, error) {
	if f == c.Key.Field || m.shared != nil {
		return m.resolve(c, f)
	}
	// Every other field maps the same way in every change of the batch.
	if col, ok := m.memo[f]; ok {
		return col, nil
	}
	col, err := m.resolve(c, f)
	if err == nil {
		m.memo[f] = col
	}
	return col, err
}

func (m *mapper) resolve(c *protocol.Change, f string) (string, error) {
	if f != c.Key.Field && m.a.local[f] && !m.a.unique[f] {
		return "", nil
	}
	col, ok := targetField(m.s, f)
	if !ok {
		return "", nil
	}
	if !m.columns[col] {
		return "", protocol.Errorf(protocol.CodeUnknownColumn, "unknown column %q in model %q", col, m.s.TargetModel)
	}
	if m.shared[col] {
		for src, t := range m.s.FieldMappings {
			if _, present := c.Data[src]; t == col && src != f && present {
				return "", protocol.Errorf(protocol.CodeBadRequest, "two fields map to column %q", col)
			}
		}
	}
	return col, nil
}

// mapChange checks one change and maps it onto the target table, re-using lay when the
// change carries the same columns.
func (m *mapper) mapChange(c *protocol.Change, lay *layout) (step, error) {
	if !m.a.unique[c.Key.Field] {
		return step{}, protocol.Errorf(protocol.CodeBadRequest,
			"key field %q is not one of the unique identifier fields", c.Key.Field)
	}
	key, ok := targetField(m.s, c.Key.Field)
	if !ok {
		key = c.Key.Field // an unmapped key still matches by its own name
	}
	if !m.columns[key] {
		return step{}, protocol.Errorf(protocol.CodeUnknownColumn, "unknown column %q in model %q", key, m.s.TargetModel)
	}
	if m.keys != nil && !m.keys[key] {
		return step{}, protocol.Errorf(protocol.CodeBadRequest, "model %q is written by a sync handler that matches records by %s, not %q",
			m.s.TargetModel, strings.Join(slices.Sorted(maps.Keys(m.keys)), " or "), key)
	}
	st := step{key: key, value: c.Key.Value, origin: c.OriginPlatformID}
	if c.EventType == protocol.EventDeleted || c.ShouldDelete {
		st.delete = true
		return st, nil
	}
	if c.Data == nil {
		return step{}, protocol.Errorf(protocol.CodeBadRequest, "event %s has no data", c.EventType)
	}
	if lay != nil && lay.cols[lay.keyIdx] == key {
		vals, fits, err := m.fit(c, key, lay)
		if err != nil || fits {
			st.lay, st.vals = lay, vals
			return st, err
		}
	}
	cols := []string{key}
	for f := range c.Data {
		col, err := m.target(c, f)
		if err != nil {
			return step{}, err
		}
		if col != "" && col != key {
			cols = append(cols, col)
		}
	}
	slices.Sort(cols[1:]) // the same columns always make the same statement
	lay = &layout{cols: cols, index: make(map[string]int, len(cols))}
	for i, col := range cols {
		lay.index[col] = i
	}
	vals, _, err := m.fit(c, key, lay)
	st.lay, st.vals = lay, vals
	return st, err
}

// fit lays the values of c out in lay; fits is false when c has other columns than lay.
func (m *mapper) fit(c *protocol.Change, key string, lay *layout) (vals []any, fits bool, err error) {
	vals = make([]any, len(lay.cols))
	n := 1
	for f, v := range c.Data {
		col, err := m.target(c, f)
		if err != nil {
			return nil, false, err
		}
		if col == "" || col == key {
			continue
		}
		i, ok := lay.index[col]
		if !ok {
			return nil, false, nil
		}
		vals[i] = v
		n++
	}
	vals[lay.keyIdx] = c.Key.Value
	return vals, n == len(lay.cols), nil
}

// ensureTables creates mooxsync's tables in the application database once: the applied
// batches, and the outbox with (on SQLite) the origin marker the writes set.
func (a *Applier) ensureTables(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ready {
		return nil
	}
	if err := a.db.EnsureApplied(ctx); err != nil {
		return err
	}
	if err := a.db.EnsureOutbox(ctx); err != nil {
		return err
	}
	// Rows the syncs write are recorded as theirs, so reconciliation deletes only those.
	if err := a.db.EnsureOwned(ctx); err != nil {
		return err
	}
	a.ready = true
	return nil
}
