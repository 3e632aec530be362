package source

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/deliver"
	"github.com/mooxsync/mooxsync/backend/handler"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// Names of the transformers that read the application database, registered by
// RegisterTransformers: the source side of the meta and wp_user sync handlers.
const (
	// MetaTransformer adds a record's meta rows (a key/value meta table) to its row as an
	// object field; see MetaTransformerConfig.
	MetaTransformer = "meta"
	// WPUserTransformer is MetaTransformer preset for WordPress users (Moox Press's
	// WpUserTransformer): wp_users rows get their wp_usermeta rows of WordPress's per-user
	// meta keys (handler.WPUserMetaFields) in the field "meta", which the wp_user sync
	// handler writes on the target.
	WPUserTransformer = "wp_user"
)

// MetaTransformerConfig configures the meta transformer:
//
//	{"meta_table": "wp_usermeta", "meta_foreign_key": "user_id", "main_id": "ID",
//	 "meta_key_column": "meta_key", "meta_value_column": "meta_value",
//	 "meta_keys": ["nickname", "first_name"], "meta_object": "meta"}
//
// Every change of a record (but a delete) gets the field meta_object: an object of the
// record's meta rows (meta key -> meta value, as text or null) whose foreign key is the
// record's main_id. meta_keys limits the keys (default: all but WordPress's capabilities
// and user levels, which grant rights where they are written). A change of a meta row
// re-delivers the record it belongs to.
type MetaTransformerConfig struct {
	MetaTable       string   `json:"meta_table"`
	MetaForeignKey  string   `json:"meta_foreign_key"`
	MainID          string   `json:"main_id"`
	MetaKeyColumn   string   `json:"meta_key_column"`
	MetaValueColumn string   `json:"meta_value_column"`
	MetaKeys        []string `json:"meta_keys"`
	MetaObject      string   `json:"meta_object"`
}

// RegisterTransformers adds to r the transformers that read the application database app:
// MetaTransformer and WPUserTransformer.
func RegisterTransformers(r *transform.Registry, app *sqldb.DB) {
	r.Register(MetaTransformer, func(config json.RawMessage) (transform.Transformer, error) {
		if config == nil {
			return nil, errors.New(`the meta transformer needs a config: {"meta_table": ..., "meta_foreign_key": ..., "main_id": ...}`)
		}
		var cfg MetaTransformerConfig
		if err := decodeStrict(config, &cfg); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return newMetaTransformer(app, cfg, false)
	})
	r.Register(WPUserTransformer, func(config json.RawMessage) (transform.Transformer, error) {
		cfg := MetaTransformerConfig{MetaForeignKey: "user_id", MainID: "ID",
			MetaKeys: slices.Clone(handler.WPUserMetaFields), MetaObject: "meta"}
		if config != nil {
			if err := decodeStrict(config, &cfg); err != nil {
				return nil, fmt.Errorf("config: %w", err)
			}
		}
		return newMetaTransformer(app, cfg, cfg.MetaTable == "")
	})
}

// metaTransformer is the meta transformer built from a checked config.
type metaTransformer struct {
	app *sqldb.DB
	cfg MetaTransformerConfig
	// derived: the meta table is the model's name with "users" replaced by "usermeta".
	derived bool
	keys    map[string]bool // nil: every key but capabilities and user levels
}

var (
	_ transform.Transformer = (*metaTransformer)(nil)
	_ deliver.Dependent     = (*metaTransformer)(nil)
)

func newMetaTransformer(app *sqldb.DB, cfg MetaTransformerConfig, derived bool) (*metaTransformer, error) {
	if cfg.MetaKeyColumn == "" {
		cfg.MetaKeyColumn = "meta_key"
	}
	if cfg.MetaValueColumn == "" {
		cfg.MetaValueColumn = "meta_value"
	}
	if cfg.MetaObject == "" {
		cfg.MetaObject = "meta"
	}
	switch {
	case cfg.MetaTable == "" && !derived:
		return nil, errors.New("meta_table: name the meta table (e.g. wp_usermeta)")
	case cfg.MetaForeignKey == "":
		return nil, errors.New("meta_foreign_key: name the meta table's column holding the record's id (e.g. user_id)")
	case cfg.MainID == "":
		return nil, errors.New("main_id: name the record's own id column, which meta rows refer to (e.g. ID)")
	case cfg.MetaKeyColumn == cfg.MetaValueColumn || cfg.MetaKeyColumn == cfg.MetaForeignKey ||
		cfg.MetaValueColumn == cfg.MetaForeignKey:
		return nil, errors.New("meta_foreign_key, meta_key_column and meta_value_column must be three columns")
	}
	t := &metaTransformer{app: app, cfg: cfg, derived: derived}
	if cfg.MetaKeys != nil {
		t.keys = map[string]bool{}
		for _, k := range cfg.MetaKeys {
			if k == "" {
				return nil, errors.New("meta_keys: empty key")
			}
			t.keys[k] = true
		}
	}
	return t, nil
}

// metaTable returns the meta table of the records of model.
func (t *metaTransformer) metaTable(model string) string {
	if t.derived {
		return strings.TrimSuffix(model, "users") + "usermeta"
	}
	return t.cfg.MetaTable
}

// Dependencies names the meta table: a change of a meta row re-delivers its record.
func (t *metaTransformer) Dependencies(model string) []deliver.Dependency {
	return []deliver.Dependency{{Table: t.metaTable(model), Column: t.cfg.MetaForeignKey}}
}

// wanted reports whether a meta key is synced.
func (t *metaTransformer) wanted(k string) bool {
	if t.keys != nil {
		return t.keys[k]
	}
	return !strings.HasSuffix(k, "capabilities") && !strings.HasSuffix(k, "user_level")
}

// Transform adds the record's meta rows to a created or updated row.
func (t *metaTransformer) Transform(ctx context.Context, c transform.Change) (transform.Change, bool, error) {
	if c.Event == protocol.EventDeleted {
		return c, true, nil
	}
	id, ok := capture.IDText(c.Data[t.cfg.MainID])
	if !ok {
		return c, false, fmt.Errorf("meta transformer: the %s row has no %s", c.Model, t.cfg.MainID)
	}
	var arg any = id
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		arg = n
	}
	d := t.app.Dialect()
	q := d.QuoteIdent
	table := t.metaTable(c.Model)
	rows, err := t.app.SQL().QueryContext(ctx, "SELECT "+q(t.cfg.MetaKeyColumn)+", "+q(t.cfg.MetaValueColumn)+
		" FROM "+q(table)+" WHERE "+q(t.cfg.MetaForeignKey)+" = "+d.Placeholder(1), arg)
	if err != nil {
		return c, false, fmt.Errorf("meta transformer: read %s: %w", table, err)
	}
	defer rows.Close()
	meta := map[string]any{}
	for rows.Next() {
		var k, v sql.NullString
		if err := rows.Scan(&k, &v); err != nil {
			return c, false, fmt.Errorf("meta transformer: read %s: %w", table, err)
		}
		if !k.Valid || k.String == "" || !t.wanted(k.String) {
			continue
		}
		if v.Valid {
			meta[k.String] = v.String
		} else {
			meta[k.String] = nil
		}
	}
	if err := rows.Err(); err != nil {
		return c, false, fmt.Errorf("meta transformer: read %s: %w", table, err)
	}
	c.Data[t.cfg.MetaObject] = meta
	return c, true, nil
}

// decodeStrict decodes one JSON value, refusing unknown fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
