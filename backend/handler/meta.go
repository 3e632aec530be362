package handler

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// Names of the built-in handlers.
const (
	// Meta writes a main table plus a key/value meta table (configured by MetaConfig).
	Meta = "meta"
	// WPUser is Meta preset for WordPress users (wp_users + wp_usermeta), Moox Press's
	// WpUserSyncHandler; see WPUserConfig.
	WPUser = "wp_user"
)

// MetaConfig configures the meta handler: records live in a main table, matched across
// platforms by main_key, and some of their fields live as rows of a meta table
// (main row id, meta key, meta value) — WordPress's wp_users and wp_usermeta:
//
//	{"main_table": "wp_users", "main_key": "user_login", "main_id": "ID",
//	 "meta_table": "wp_usermeta", "meta_foreign_key": "user_id",
//	 "meta_key_column": "meta_key", "meta_value_column": "meta_value",
//	 "meta_fields": ["nickname", "first_name", "last_name"], "meta_object": "meta"}
//
// A row's fields that are columns of the main table are written there (its own id column
// never: the target's auto-increment id stays its own); each field named in meta_fields
// becomes the meta row with that meta key, and each entry of the object in the field
// meta_object becomes one too (a meta_fields field wins over an object entry of the same
// key). Meta keys the row does not carry are left alone. Meta values are stored as text:
// strings as they are, numbers in their decimal form, true as "1" and false as "" (PHP's
// string cast), objects and arrays as JSON, null as NULL.
//
// Sync upserts the main row by main_key, looks up the target's own id of it, then updates
// or inserts each meta row by (meta_foreign_key, meta_key_column). Delete removes every
// meta row of the record, then the main row.
type MetaConfig struct {
	// MainTable is the main table; default: the bound target model.
	MainTable string `json:"main_table,omitempty"`
	// MainKey is the main table's column that identifies a record across platforms
	// (user_login or user_email): changes must be keyed by it. Required.
	MainKey string `json:"main_key"`
	// MainID is the main table's own id column, which meta rows refer to; default: its
	// single-column primary key.
	MainID string `json:"main_id,omitempty"`
	// MetaTable is the meta table. Required (wp_user derives it from the main table).
	MetaTable string `json:"meta_table"`
	// MetaForeignKey is the meta table's column holding the main row's id (user_id). Required.
	MetaForeignKey string `json:"meta_foreign_key"`
	// MetaKeyColumn and MetaValueColumn default to meta_key and meta_value.
	MetaKeyColumn   string `json:"meta_key_column,omitempty"`
	MetaValueColumn string `json:"meta_value_column,omitempty"`
	// MetaFields are row fields stored as meta rows under their own name.
	MetaFields []string `json:"meta_fields,omitempty"`
	// MetaObject is a row field holding an object of meta key -> value.
	MetaObject string `json:"meta_object,omitempty"`
}

// WPUserMetaFields are the user meta keys WordPress core keeps for every user, which the
// wp_user handler syncs by default. Capabilities and user levels are left out on purpose:
// their keys carry the table prefix and they grant rights on the target site.
var WPUserMetaFields = []string{
	"nickname", "first_name", "last_name", "description", "rich_editing", "syntax_highlighting",
	"comment_shortcuts", "admin_color", "use_ssl", "show_admin_bar_front", "locale",
}

// WPUserConfig is the configuration of the wp_user handler: main table the bound model
// (wp_users), matched by user_login, meta table of the same prefix (wp_usermeta),
// WPUserMetaFields plus the object field "meta".
func WPUserConfig() MetaConfig {
	return MetaConfig{
		MainKey: "user_login", MainID: "ID",
		MetaForeignKey: "user_id", MetaKeyColumn: "meta_key", MetaValueColumn: "meta_value",
		MetaFields: slices.Clone(WPUserMetaFields), MetaObject: "meta",
	}
}

// MetaHandler is the meta handler built from a checked MetaConfig.
type MetaHandler struct {
	cfg MetaConfig
	// metaTable returns the meta table of a main table when the config names none.
	metaTable func(main string) string
}

var _ Handler = (*MetaHandler)(nil)

// ParseMeta checks a meta handler config (JSON, unknown keys refused) and builds the handler.
func ParseMeta(config json.RawMessage) (*MetaHandler, error) {
	if isNull(config) {
		return nil, errors.New(`the meta handler needs a config: {"main_key": ..., "meta_table": ..., "meta_foreign_key": ..., "meta_fields": [...]}`)
	}
	var cfg MetaConfig
	if err := decodeStrict(config, &cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return NewMeta(cfg)
}

// ParseWPUser builds the wp_user handler: WPUserConfig with the keys of config (optional)
// laid over it.
func ParseWPUser(config json.RawMessage) (*MetaHandler, error) {
	cfg := WPUserConfig()
	if !isNull(config) {
		if err := decodeStrict(config, &cfg); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	h, err := newMeta(cfg, cfg.MetaTable == "")
	if err != nil {
		return nil, err
	}
	if cfg.MetaTable == "" {
		// wp_users -> wp_usermeta, wp2_users -> wp2_usermeta
		h.metaTable = func(main string) string { return strings.TrimSuffix(main, "users") + "usermeta" }
	}
	return h, nil
}

// NewMeta checks cfg and builds the meta handler.
func NewMeta(cfg MetaConfig) (*MetaHandler, error) { return newMeta(cfg, false) }

func newMeta(cfg MetaConfig, derivedMetaTable bool) (*MetaHandler, error) {
	if cfg.MetaKeyColumn == "" {
		cfg.MetaKeyColumn = "meta_key"
	}
	if cfg.MetaValueColumn == "" {
		cfg.MetaValueColumn = "meta_value"
	}
	switch {
	case cfg.MainKey == "":
		return nil, errors.New("main_key: name the main table's column that identifies a record across platforms (e.g. user_login)")
	case cfg.MetaTable == "" && !derivedMetaTable:
		return nil, errors.New("meta_table: name the meta table (e.g. wp_usermeta)")
	case cfg.MetaForeignKey == "":
		return nil, errors.New("meta_foreign_key: name the meta table's column holding the main row's id (e.g. user_id)")
	case cfg.MainTable != "" && cfg.MainTable == cfg.MetaTable:
		return nil, errors.New("main_table and meta_table must differ")
	case len(cfg.MetaFields) == 0 && cfg.MetaObject == "":
		return nil, errors.New("meta_fields or meta_object: name the fields stored as meta rows")
	}
	seen := map[string]bool{}
	for _, c := range []string{cfg.MetaForeignKey, cfg.MetaKeyColumn, cfg.MetaValueColumn} {
		if seen[c] {
			return nil, fmt.Errorf("meta_foreign_key, meta_key_column and meta_value_column must be three columns, %q is named twice", c)
		}
		seen[c] = true
	}
	fields := map[string]bool{}
	for _, f := range cfg.MetaFields {
		switch {
		case f == "":
			return nil, errors.New("meta_fields: empty field name")
		case fields[f]:
			return nil, fmt.Errorf("meta_fields: %q is listed twice", f)
		}
		fields[f] = true
	}
	if fields[cfg.MetaObject] {
		return nil, fmt.Errorf("meta_object %q is also in meta_fields", cfg.MetaObject)
	}
	return &MetaHandler{cfg: cfg}, nil
}

// Config returns the handler's configuration (defaults filled in).
func (h *MetaHandler) Config() MetaConfig { return h.cfg }

// metaLayout is the handler's configuration resolved against the live schema.
type metaLayout struct {
	main, meta       string
	mainKey, mainID  protocol.Column
	fk, mkey, mvalue string
	mainCols         map[string]bool // writable main columns (id excluded)
	d                sqldb.Dialect
}

// resolve checks the configuration against the live schema of the main and meta tables.
func (h *MetaHandler) resolve(ctx context.Context, db *sqldb.DB, target string) (*metaLayout, error) {
	l := &metaLayout{main: h.cfg.MainTable, meta: h.cfg.MetaTable, fk: h.cfg.MetaForeignKey,
		mkey: h.cfg.MetaKeyColumn, mvalue: h.cfg.MetaValueColumn, d: db.Dialect()}
	if l.main == "" {
		l.main = target
	}
	if l.meta == "" && h.metaTable != nil {
		l.meta = h.metaTable(l.main)
	}
	if l.main == l.meta {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "meta handler: main table and meta table are both %q", l.main)
	}
	main, err := db.Model(ctx, l.main)
	if err != nil {
		return nil, fmt.Errorf("meta handler main table: %w", err)
	}
	meta, err := db.Model(ctx, l.meta)
	if err != nil {
		return nil, fmt.Errorf("meta handler meta table: %w", err)
	}
	cols := make(map[string]protocol.Column, len(main.Columns))
	var pk []protocol.Column
	for _, c := range main.Columns {
		cols[c.Name] = c
		if c.PrimaryKey {
			pk = append(pk, c)
		}
	}
	var ok bool
	if l.mainKey, ok = cols[h.cfg.MainKey]; !ok {
		return nil, protocol.Errorf(protocol.CodeUnknownColumn, "meta handler: main_key: unknown column %q in model %q", h.cfg.MainKey, l.main)
	}
	switch {
	case h.cfg.MainID != "":
		if l.mainID, ok = cols[h.cfg.MainID]; !ok {
			return nil, protocol.Errorf(protocol.CodeUnknownColumn, "meta handler: main_id: unknown column %q in model %q", h.cfg.MainID, l.main)
		}
	case len(pk) == 1:
		l.mainID = pk[0]
	default:
		return nil, protocol.Errorf(protocol.CodeUnknownColumn, "meta handler: model %q has no single-column primary key: set main_id", l.main)
	}
	if l.mainID.Name == l.mainKey.Name {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "meta handler: main_key %q is the main table's own id: match records by a cross-platform column", l.mainKey.Name)
	}
	metaCols := map[string]bool{}
	for _, c := range meta.Columns {
		metaCols[c.Name] = true
	}
	for _, c := range []struct{ what, name string }{{"meta_foreign_key", l.fk}, {"meta_key_column", l.mkey}, {"meta_value_column", l.mvalue}} {
		if !metaCols[c.name] {
			return nil, protocol.Errorf(protocol.CodeUnknownColumn, "meta handler: %s: unknown column %q in model %q", c.what, c.name, l.meta)
		}
	}
	l.mainCols = make(map[string]bool, len(cols))
	for name := range cols {
		if name != l.mainID.Name {
			l.mainCols[name] = true
		}
	}
	for _, f := range append(slices.Clone(h.cfg.MetaFields), h.cfg.MetaObject) {
		if f != "" && cols[f].Name != "" {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "meta handler: meta field %q is also a column of %q", f, l.main)
		}
	}
	return l, nil
}

// Check validates the configuration against the live schema.
func (h *MetaHandler) Check(ctx context.Context, db *sqldb.DB, target string) (Schema, error) {
	l, err := h.resolve(ctx, db, target)
	if err != nil {
		return Schema{}, err
	}
	fields := slices.Collect(maps.Keys(l.mainCols))
	fields = append(fields, h.cfg.MetaFields...)
	if h.cfg.MetaObject != "" {
		fields = append(fields, h.cfg.MetaObject)
	}
	slices.Sort(fields)
	return Schema{Fields: fields, Keys: []string{l.mainKey.Name}, Tables: []string{l.main, l.meta}}, nil
}

// keyed resolves the layout and checks that key is the main key.
func (h *MetaHandler) keyed(ctx context.Context, tx *Tx, target string, key protocol.Key) (*metaLayout, error) {
	l, err := h.resolve(ctx, tx.DB, target)
	if err != nil {
		return nil, err
	}
	if key.Field != l.mainKey.Name {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "meta handler: records of %q are matched by %q, not %q", l.main, l.mainKey.Name, key.Field)
	}
	return l, nil
}

// Exists reports whether a main row has the key.
func (h *MetaHandler) Exists(ctx context.Context, tx *Tx, target string, key protocol.Key) (bool, error) {
	l, err := h.keyed(ctx, tx, target, key)
	if err != nil {
		return false, err
	}
	return tx.Exists(ctx, l.main, l.mainKey.Name, key.Value)
}

// Sync upserts the main row, then the meta rows of every main row with the key.
func (h *MetaHandler) Sync(ctx context.Context, tx *Tx, target string, key protocol.Key, row map[string]any) (bool, error) {
	l, err := h.keyed(ctx, tx, target, key)
	if err != nil {
		return false, err
	}
	mainRow := make(map[string]any, len(row))
	meta := map[string]any{}
	if obj, ok := row[h.cfg.MetaObject]; ok && h.cfg.MetaObject != "" && obj != nil {
		m, ok := obj.(map[string]any)
		if !ok {
			return false, protocol.Errorf(protocol.CodeBadRequest, "meta handler: field %q must be an object of meta key to value", h.cfg.MetaObject)
		}
		for k, v := range m {
			if k == "" {
				return false, protocol.Errorf(protocol.CodeBadRequest, "meta handler: field %q has an empty meta key", h.cfg.MetaObject)
			}
			meta[k] = v
		}
	}
	for _, f := range h.cfg.MetaFields {
		if v, ok := row[f]; ok {
			meta[f] = v
		}
	}
	for f, v := range row {
		if l.mainCols[f] {
			mainRow[f] = v
		}
	}
	mainRow[l.mainKey.Name] = key.Value
	inserted, err := tx.Upsert(ctx, l.main, l.mainKey.Name, mainRow)
	if err != nil {
		return false, err
	}
	if len(meta) == 0 {
		return inserted, nil
	}
	ids, err := l.ids(ctx, tx, key.Value)
	if err != nil {
		return false, err
	}
	if len(ids) == 0 {
		return false, fmt.Errorf("meta handler: %s %s=%v not found after its upsert", l.main, l.mainKey.Name, key.Value)
	}
	for _, id := range ids {
		for _, k := range slices.Sorted(maps.Keys(meta)) {
			v, err := metaText(meta[k])
			if err != nil {
				return false, protocol.Errorf(protocol.CodeBadRequest, "meta handler: meta %q: %s", k, err)
			}
			if err := l.putMeta(ctx, tx, id, k, v); err != nil {
				return false, err
			}
		}
	}
	return inserted, nil
}

// Delete removes the meta rows of every main row with the key, then those main rows.
func (h *MetaHandler) Delete(ctx context.Context, tx *Tx, target string, key protocol.Key) (bool, error) {
	l, err := h.keyed(ctx, tx, target, key)
	if err != nil {
		return false, err
	}
	ids, err := l.ids(ctx, tx, key.Value)
	if err != nil {
		return false, err
	}
	q := "DELETE FROM " + l.q(l.meta) + " WHERE " + l.q(l.fk) + " = " + l.d.Placeholder(1)
	for _, id := range ids {
		if _, err := tx.Tx().ExecContext(ctx, q, id); err != nil {
			return false, fmt.Errorf("delete from %q: %w", l.meta, err)
		}
	}
	n, err := tx.Delete(ctx, l.main, l.mainKey.Name, key.Value)
	return n > 0, err
}

func (l *metaLayout) q(name string) string { return l.d.QuoteIdent(name) }

// ids returns the target's own ids of the main rows whose key column has value.
func (l *metaLayout) ids(ctx context.Context, tx *Tx, value any) ([]int64, error) {
	arg, err := keyArg(l.mainKey, value)
	if err != nil {
		return nil, err
	}
	q := "SELECT " + l.q(l.mainID.Name) + " FROM " + l.q(l.main) + " WHERE " + l.q(l.mainKey.Name) + " = " + l.d.Placeholder(1)
	rows, err := tx.Tx().QueryContext(ctx, q, arg)
	if err != nil {
		return nil, fmt.Errorf("look up in %q: %w", l.main, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("look up in %q: %s is not an integer id: %w", l.main, l.mainID.Name, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up in %q: %w", l.main, err)
	}
	return ids, nil
}

// putMeta updates the meta rows (id, key), or inserts one when there is none.
func (l *metaLayout) putMeta(ctx context.Context, tx *Tx, id int64, key string, value sql.NullString) error {
	p := l.d.Placeholder
	upd := "UPDATE " + l.q(l.meta) + " SET " + l.q(l.mvalue) + " = " + p(1) +
		" WHERE " + l.q(l.fk) + " = " + p(2) + " AND " + l.q(l.mkey) + " = " + p(3)
	res, err := tx.Tx().ExecContext(ctx, upd, value, id, key)
	if err != nil {
		return fmt.Errorf("update %q: %w", l.meta, err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	// MySQL counts changed rows only: 0 may mean "there, with this value".
	var one int
	exists := "SELECT 1 FROM " + l.q(l.meta) + " WHERE " + l.q(l.fk) + " = " + p(1) + " AND " + l.q(l.mkey) + " = " + p(2) + " LIMIT 1"
	switch err := tx.Tx().QueryRowContext(ctx, exists, id, key).Scan(&one); {
	case err == nil:
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("look up in %q: %w", l.meta, err)
	}
	ins := "INSERT INTO " + l.q(l.meta) + " (" + l.q(l.fk) + ", " + l.q(l.mkey) + ", " + l.q(l.mvalue) + ") VALUES (" + p(1) + ", " + p(2) + ", " + p(3) + ")"
	if _, err := tx.Tx().ExecContext(ctx, ins, id, key, value); err != nil {
		return fmt.Errorf("insert into %q: %w", l.meta, err)
	}
	return nil
}

// keyArg binds a key value for a column: integers for integer columns, text otherwise.
func keyArg(c protocol.Column, v any) (any, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	case int64:
		s = strconv.FormatInt(x, 10)
	case int:
		s = strconv.Itoa(x)
	default:
		return nil, protocol.Errorf(protocol.CodeBadRequest, "meta handler: key value %v is not a string or number", v)
	}
	t := strings.ToLower(c.Type)
	if strings.Contains(t, "int") && !strings.Contains(t, "interval") && !strings.Contains(t, "point") {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "meta handler: key %q of integer column %q", s, c.Name)
		}
		return n, nil
	}
	return s, nil
}

// metaText renders a meta value as WordPress stores it (see MetaConfig).
func metaText(v any) (sql.NullString, error) {
	switch x := v.(type) {
	case nil:
		return sql.NullString{}, nil
	case string:
		return sql.NullString{String: x, Valid: true}, nil
	case json.Number:
		return sql.NullString{String: x.String(), Valid: true}, nil
	case bool:
		if x {
			return sql.NullString{String: "1", Valid: true}, nil
		}
		return sql.NullString{String: "", Valid: true}, nil
	case float64:
		return sql.NullString{String: strconv.FormatFloat(x, 'f', -1, 64), Valid: true}, nil
	case int64:
		return sql.NullString{String: strconv.FormatInt(x, 10), Valid: true}, nil
	case int:
		return sql.NullString{String: strconv.Itoa(x), Valid: true}, nil
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return sql.NullString{}, err
		}
		return sql.NullString{String: string(b), Valid: true}, nil
	}
	return sql.NullString{}, fmt.Errorf("unsupported value of type %T", v)
}
