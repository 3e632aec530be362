package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mooxsync/mooxsync/backend/apply"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// Field is one source field and the target column apply writes it into.
type Field struct {
	Source string
	Target string
}

// Projection says how a source row looks on the target: which source field is the key,
// which fields reach which target columns. Hashes on both sides cover the key text and the
// values of Fields, in the order of Fields.
type Projection struct {
	// Table is the source table (the sync's source_model).
	Table string
	// Key is the source key field: the first unique identifier field the rows have.
	// Rows whose key is NULL are not reconciled (capture sends them by a later unique
	// identifier field; reconciliation ranges need one key for all rows).
	Key string
	// TargetKey is the target column the key matches (apply's rule: the key's mapping, or
	// its own name).
	TargetKey string
	// Fields are the fields that reach the target, sorted by target column, the key among
	// them.
	Fields []Field
}

// Columns returns the target columns of p in hashing order: what a HashesRequest names.
func (p Projection) Columns() []string {
	out := make([]string, len(p.Fields))
	for i, f := range p.Fields {
		out[i] = f.Target
	}
	return out
}

func (p Projection) sourceColumns() []string {
	out := make([]string, len(p.Fields))
	for i, f := range p.Fields {
		out[i] = f.Source
	}
	return out
}

// NewProjection projects rows with the given fields (the source table's columns, or the
// fields a transformer's output carries) the way apply maps them for sync s: local
// identifier fields are dropped unless they are also unique identifier fields or the key;
// with sync_all_fields every other field keeps its name, else field_mappings map them and
// unmapped fields are dropped. Empty lists in cfg take Moox's defaults (apply's).
func NewProjection(s protocol.Sync, fields []string, cfg apply.Config) (Projection, error) {
	unique := cfg.UniqueIdentifierFields
	if len(unique) == 0 {
		unique = apply.DefaultUniqueIdentifierFields
	}
	local := cfg.LocalIdentifierFields
	if len(local) == 0 {
		local = apply.DefaultLocalIdentifierFields
	}
	p := Projection{Table: s.SourceModel}
	for _, u := range unique {
		if slices.Contains(fields, u) {
			p.Key = u
			break
		}
	}
	if p.Key == "" {
		return Projection{}, fmt.Errorf("sync %d: %s has none of the unique identifier fields %s", s.ID, s.SourceModel, strings.Join(unique, ", "))
	}
	var ok bool
	if p.TargetKey, ok = targetField(s, p.Key); !ok {
		p.TargetKey = p.Key
	}
	p.Fields = []Field{{Source: p.Key, Target: p.TargetKey}}
	byTarget := map[string]string{p.TargetKey: p.Key}
	for _, f := range slices.Sorted(slices.Values(fields)) {
		if f == p.Key || (slices.Contains(local, f) && !slices.Contains(unique, f)) {
			continue
		}
		t, ok := targetField(s, f)
		if !ok || t == p.TargetKey {
			continue // apply writes the key column from the key alone
		}
		if other, dup := byTarget[t]; dup {
			return Projection{}, fmt.Errorf("sync %d: fields %q and %q both map to column %q", s.ID, other, f, t)
		}
		byTarget[t] = f
		p.Fields = append(p.Fields, Field{Source: f, Target: t})
	}
	slices.SortFunc(p.Fields, func(a, b Field) int { return strings.Compare(a.Target, b.Target) })
	return p, nil
}

// targetField is apply's mapping of a source field (see apply: with sync_all_fields a
// field keeps its name, else its field mapping names its column).
func targetField(s protocol.Sync, field string) (string, bool) {
	if s.SyncAllFields {
		return field, true
	}
	t, ok := s.FieldMappings[field]
	return t, ok && t != ""
}

// Source is the source side of a reconciliation: the sync's source table read through its
// Projection, and optionally through the sync's transformer, as the sender would deliver it.
type Source struct {
	db   *sqldb.DB
	sync protocol.Sync
	proj Projection
	tr   transform.Transformer
	cols []string // every column of the source table: what a repair carries
	now  func() time.Time
}

// NewSource prepares the source side of sync s on db (the source platform's application
// database). cfg holds the agent's identifier settings; tr is the sync's transformer (nil:
// none). Without a transformer the fields are the source table's columns; with one they
// are those of the transformed first row of the table, so a transformer must give every
// row the same fields and must not change the key.
func NewSource(ctx context.Context, db *sqldb.DB, s protocol.Sync, cfg apply.Config, tr transform.Transformer) (*Source, error) {
	m, err := db.Model(ctx, s.SourceModel)
	if err != nil {
		return nil, err
	}
	src := &Source{db: db, sync: s, tr: tr, now: time.Now}
	for _, c := range m.Columns {
		src.cols = append(src.cols, c.Name)
	}
	fields := src.cols
	if tr != nil {
		if fields, err = src.transformedFields(ctx, cfg); err != nil {
			return nil, err
		}
	}
	if src.proj, err = NewProjection(s, fields, cfg); err != nil {
		return nil, err
	}
	return src, nil
}

// Projection returns how the source's rows are compared with the target's.
func (s *Source) Projection() Projection { return s.proj }

// errStop ends a scan early.
var errStop = errors.New("stop")

// transformedFields transforms the first row that the transformer keeps and returns its
// fields.
func (s *Source) transformedFields(ctx context.Context, cfg apply.Config) ([]string, error) {
	unique := cfg.UniqueIdentifierFields
	if len(unique) == 0 {
		unique = apply.DefaultUniqueIdentifierFields
	}
	key := ""
	for _, u := range unique {
		if slices.Contains(s.cols, u) {
			key = u
			break
		}
	}
	if key == "" {
		return s.cols, nil // NewProjection explains
	}
	var fields []string
	err := s.db.Scan(ctx, s.sync.SourceModel, key, s.cols, []sqldb.KeyRange{{}}, false, func(_ int, _ string, vals []any) error {
		out, keep, err := s.transform(ctx, s.row(vals))
		if err != nil || !keep {
			return err
		}
		fields = slices.Sorted(maps.Keys(out))
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if fields == nil {
		return s.cols, nil // nothing to compare with: no row is kept
	}
	return fields, nil
}

// row builds the source row of one scan of s.cols.
func (s *Source) row(vals []any) map[string]any {
	m := make(map[string]any, len(s.cols))
	for i, c := range s.cols {
		m[c] = vals[i]
	}
	return m
}

// transform runs the transformer over a copy of row.
func (s *Source) transform(ctx context.Context, row map[string]any) (map[string]any, bool, error) {
	if s.tr == nil {
		return row, true, nil
	}
	c := transform.Change{
		SyncID: s.sync.ID, TargetPlatformID: s.sync.TargetPlatformID, Model: s.sync.SourceModel,
		Event: protocol.EventUpdated, Data: maps.Clone(row), ChangedAt: s.now().UTC(),
	}
	out, keep, err := s.tr.Transform(ctx, c)
	if err != nil {
		return nil, false, fmt.Errorf("transform %s row: %w", s.sync.SourceModel, err)
	}
	return out.Data, keep, nil
}

// count returns the rows with a key.
func (s *Source) count(ctx context.Context) (int64, error) {
	return s.db.Count(ctx, s.proj.Table, s.proj.Key, sqldb.KeyRange{})
}

// split cuts each range into up to parts pieces by the source's keys.
func (s *Source) split(ctx context.Context, ranges []sqldb.KeyRange, counts []int64, parts int) ([][]string, error) {
	return s.db.SplitRanges(ctx, s.proj.Table, s.proj.Key, ranges, counts, parts)
}

// projected calls fn with each kept row of ranges (or of keys, when keys is not nil): its
// key text, its digest as the target would compute it, and the source row.
func (s *Source) projected(ctx context.Context, ranges []sqldb.KeyRange, keys []string, fn func(r int, key string, d sqldb.Digest, row map[string]any) error) error {
	var (
		h    sqldb.RowHasher
		vals = make([]any, len(s.proj.Fields))
	)
	each := func(r int, k string, raw []any) error {
		row := s.row(raw)
		out, keep, err := s.transform(ctx, row)
		if err != nil || !keep {
			return err
		}
		if kt := sqldb.KeyText(out[s.proj.Key]); kt != k {
			return fmt.Errorf("the transformer of sync %d changes the key %s (%q to %q): it cannot be reconciled", s.sync.ID, s.proj.Key, k, kt)
		}
		for i, f := range s.proj.Fields {
			vals[i] = out[f.Source]
		}
		return fn(r, k, h.Sum(k, vals), row)
	}
	if keys != nil {
		return s.db.ScanKeys(ctx, s.proj.Table, s.proj.Key, s.cols, keys, func(k string, raw []any) error { return each(0, k, raw) })
	}
	return s.db.Scan(ctx, s.proj.Table, s.proj.Key, s.cols, ranges, false, each)
}

// hashes returns the source's digest of each range.
func (s *Source) hashes(ctx context.Context, ranges []sqldb.KeyRange) ([]sqldb.RangeHash, error) {
	if s.tr == nil {
		return s.db.Hashes(ctx, s.proj.Table, s.proj.Key, s.proj.sourceColumns(), ranges)
	}
	out := make([]sqldb.RangeHash, len(ranges))
	for i, r := range ranges {
		out[i].Lo, out[i].Hi = r.Lo, r.Hi
	}
	err := s.projected(ctx, ranges, nil, func(r int, _ string, d sqldb.Digest, _ map[string]any) error {
		out[r].Count++
		out[r].Hash = out[r].Hash.Add(d)
		return nil
	})
	return out, err
}

// keyHashes returns the key and digest of every row in ranges, sorted by key.
func (s *Source) keyHashes(ctx context.Context, ranges []sqldb.KeyRange) ([]sqldb.KeyHash, error) {
	if s.tr == nil {
		return s.db.KeyHashes(ctx, s.proj.Table, s.proj.Key, s.proj.sourceColumns(), ranges)
	}
	var out []sqldb.KeyHash
	err := s.projected(ctx, ranges, nil, func(_ int, k string, d sqldb.Digest, _ map[string]any) error {
		out = append(out, sqldb.KeyHash{Key: k, Hash: d})
		return nil
	})
	slices.SortStableFunc(out, func(a, b sqldb.KeyHash) int { return strings.Compare(a.Key, b.Key) })
	return out, err
}

// rows calls fn with the source row of every kept row in ranges, or of keys when keys is
// not nil.
func (s *Source) rows(ctx context.Context, ranges []sqldb.KeyRange, keys []string, fn func(key string, row map[string]any) error) error {
	if s.tr == nil {
		each := func(k string, raw []any) error { return fn(k, s.row(raw)) }
		if keys != nil {
			return s.db.ScanKeys(ctx, s.proj.Table, s.proj.Key, s.cols, keys, each)
		}
		return s.db.Scan(ctx, s.proj.Table, s.proj.Key, s.cols, ranges, false, func(_ int, k string, raw []any) error { return each(k, raw) })
	}
	return s.projected(ctx, ranges, keys, func(_ int, k string, _ sqldb.Digest, row map[string]any) error { return fn(k, row) })
}

// has returns the set of keys among keys that the source has (and keeps), looked up by
// key through the database's own comparison, not by range.
func (s *Source) has(ctx context.Context, keys []string) (map[string]bool, error) {
	found := map[string]bool{}
	if s.tr == nil {
		err := s.db.ScanKeys(ctx, s.proj.Table, s.proj.Key, nil, keys, func(k string, _ []any) error {
			found[k] = true
			return nil
		})
		return found, err
	}
	err := s.rows(ctx, nil, keys, func(k string, _ map[string]any) error {
		found[k] = true
		return nil
	})
	return found, err
}
