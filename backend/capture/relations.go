package capture

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// RelationsTable is Moox Sync's table of platform relations in the application database:
// one row (model_type, model_id, platform_id, created_at, updated_at) per record and
// platform it belongs to. model_type is the record's table as syncs name it (posts),
// model_id its local primary key, as in Moox. Changes to it are captured like any table's
// and re-evaluate the record they name (see the deliver package).
const RelationsTable = "model_platform"

// relationsDDL creates model_platform as Moox's migration does (Laravel's morphs, the
// platform id and timestamps), for each dialect.
var relationsDDL = map[string][]string{
	"sqlite": {
		`CREATE TABLE IF NOT EXISTS "model_platform" (
			"id" INTEGER PRIMARY KEY AUTOINCREMENT,
			"model_type" VARCHAR(255) NOT NULL,
			"model_id" INTEGER NOT NULL,
			"platform_id" INTEGER NOT NULL,
			"created_at" DATETIME NULL,
			"updated_at" DATETIME NULL
		)`,
		`CREATE INDEX IF NOT EXISTS "model_platform_model_type_model_id_index" ON "model_platform" ("model_type", "model_id")`,
	},
	"postgres": {
		`CREATE TABLE IF NOT EXISTS "model_platform" (
			"id" BIGSERIAL PRIMARY KEY,
			"model_type" VARCHAR(255) NOT NULL,
			"model_id" BIGINT NOT NULL,
			"platform_id" BIGINT NOT NULL,
			"created_at" TIMESTAMP(0) NULL,
			"updated_at" TIMESTAMP(0) NULL
		)`,
		`CREATE INDEX IF NOT EXISTS "model_platform_model_type_model_id_index" ON "model_platform" ("model_type", "model_id")`,
	},
	"mysql": {
		"CREATE TABLE IF NOT EXISTS `model_platform` (" +
			"`id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, " +
			"`model_type` VARCHAR(255) NOT NULL, " +
			"`model_id` BIGINT UNSIGNED NOT NULL, " +
			"`platform_id` BIGINT UNSIGNED NOT NULL, " +
			"`created_at` TIMESTAMP NULL, " +
			"`updated_at` TIMESTAMP NULL, " +
			"INDEX `model_platform_model_type_model_id_index` (`model_type`, `model_id`))",
	},
}

// EnsureRelationsTable creates model_platform in the application database when it is
// missing; an existing one (Moox's own, for example) is left as it is.
func EnsureRelationsTable(ctx context.Context, db *sqldb.DB) error {
	if _, err := db.Model(ctx, RelationsTable); err == nil {
		return nil
	} else if protocol.CodeOf(err) != protocol.CodeUnknownModel {
		return fmt.Errorf("platform relations: %w", err)
	}
	for _, stmt := range relationsDDL[db.Dialect().Name()] {
		if _, err := db.SQL().ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create %s: %w", RelationsTable, err)
		}
	}
	db.Refresh(RelationsTable)
	return nil
}

// Relation is what one model_platform row image says: record ID (its local primary key,
// as text) of Model belongs to Platform.
type Relation struct {
	Model    string
	ID       string
	Platform int64
}

// RelationOf reads a captured model_platform row image. ok is false when it does not hold
// a model_type, a model_id and a numeric platform_id.
func RelationOf(image []byte) (rel Relation, ok bool) {
	var row struct {
		ModelType  any `json:"model_type"`
		ModelID    any `json:"model_id"`
		PlatformID any `json:"platform_id"`
	}
	dec := json.NewDecoder(bytes.NewReader(image))
	dec.UseNumber()
	if err := dec.Decode(&row); err != nil {
		return Relation{}, false
	}
	model, ok1 := row.ModelType.(string)
	id, ok2 := IDText(row.ModelID)
	p, ok3 := IDText(row.PlatformID)
	if !ok1 || !ok2 || !ok3 {
		return Relation{}, false
	}
	pid, err := strconv.ParseInt(p, 10, 64)
	if err != nil {
		return Relation{}, false
	}
	return Relation{Model: model, ID: id, Platform: pid}, true
}

// IDText renders a local id (a string or a number in canonical form) as text; ok is false
// for anything else.
func IDText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, x != ""
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	}
	return "", false
}

// Relations reads and writes the platform relations of records in one application
// database. It is safe for concurrent use.
type Relations struct {
	db *sqldb.DB
}

// NewRelations returns the platform relations of db's records.
func NewRelations(db *sqldb.DB) *Relations { return &Relations{db: db} }

// relLayout is model_platform as the live schema has it.
type relLayout struct {
	modelID      protocol.Column
	pk           string // single-column primary key, "" when there is none
	hasCreatedAt bool
	hasUpdatedAt bool
}

// errNoRelations is returned by layout when model_platform does not exist.
var errNoRelations = errors.New("no platform relations table")

func (r *Relations) layout(ctx context.Context) (relLayout, error) {
	m, err := r.db.Model(ctx, RelationsTable)
	if protocol.CodeOf(err) == protocol.CodeUnknownModel {
		return relLayout{}, errNoRelations
	}
	if err != nil {
		return relLayout{}, err
	}
	var l relLayout
	cols := map[string]protocol.Column{}
	var pks []string
	for _, c := range m.Columns {
		cols[c.Name] = c
		if c.PrimaryKey {
			pks = append(pks, c.Name)
		}
	}
	for _, name := range []string{"model_type", "model_id", "platform_id"} {
		if _, ok := cols[name]; !ok {
			return relLayout{}, protocol.Errorf(protocol.CodeUnknownColumn,
				"platform relations: table %s has no column %q", RelationsTable, name)
		}
	}
	l.modelID = cols["model_id"]
	if len(pks) == 1 {
		l.pk = pks[0]
	}
	_, l.hasCreatedAt = cols["created_at"]
	_, l.hasUpdatedAt = cols["updated_at"]
	return l, nil
}

// isInteger reports whether a column's declared type is an integer type.
func isInteger(c protocol.Column) bool {
	t := strings.ToLower(c.Type)
	return strings.Contains(t, "int") && !strings.Contains(t, "interval") && !strings.Contains(t, "point")
}

// idArg binds a local id for column c: an integer for an integer column, else text.
func idArg(c protocol.Column, id string) (any, error) {
	if !isInteger(c) {
		return id, nil
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "local id %q is not an integer, as %s.%s wants", id,
			RelationsTable, c.Name)
	}
	return n, nil
}

// primaryKey returns the single-column primary key of model.
func (r *Relations) primaryKey(ctx context.Context, model string) (protocol.Column, error) {
	m, err := r.db.Model(ctx, model)
	if err != nil {
		return protocol.Column{}, err
	}
	var pk []protocol.Column
	for _, c := range m.Columns {
		if c.PrimaryKey {
			pk = append(pk, c)
		}
	}
	if len(pk) != 1 {
		return protocol.Column{}, protocol.Errorf(protocol.CodeBadRequest,
			"platform relations: model %q has no single-column primary key for model_platform.model_id", model)
	}
	return pk[0], nil
}

// ID returns the local id (primary key, as text) of a row image of model; found is false
// when the image does not hold it.
func (r *Relations) ID(ctx context.Context, model string, image []byte) (id string, found bool, err error) {
	pk, err := r.primaryKey(ctx, model)
	if err != nil {
		return "", false, err
	}
	var row map[string]any
	dec := json.NewDecoder(bytes.NewReader(image))
	dec.UseNumber()
	if err := dec.Decode(&row); err != nil {
		return "", false, fmt.Errorf("platform relations: row image of %s: %w", model, err)
	}
	id, found = IDText(row[pk.Name])
	return id, found, nil
}

// IDByKey returns the local id of the record of model whose field has value (a unique
// identifier field and its value, as a change's key carries them); found is false when
// there is none.
func (r *Relations) IDByKey(ctx context.Context, model, field string, value any) (id string, found bool, err error) {
	pk, err := r.primaryKey(ctx, model)
	if err != nil {
		return "", false, err
	}
	row, found, err := r.db.Get(ctx, model, field, value)
	if err != nil || !found {
		return "", false, err
	}
	id, found = IDText(row[pk.Name])
	return id, found, nil
}

// Platforms returns the platforms the record of model with local id belongs to, sorted.
// Without a model_platform table it belongs to none.
func (r *Relations) Platforms(ctx context.Context, model, id string) ([]int64, error) {
	l, err := r.layout(ctx)
	if errors.Is(err, errNoRelations) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	arg, err := idArg(l.modelID, id)
	if err != nil {
		return nil, err
	}
	d := r.db.Dialect()
	q := "SELECT DISTINCT " + d.QuoteIdent("platform_id") + " FROM " + d.QuoteIdent(RelationsTable) +
		" WHERE " + d.QuoteIdent("model_type") + " = " + d.Placeholder(1) + " AND " + d.QuoteIdent("model_id") +
		" = " + d.Placeholder(2)
	return queryIDs(ctx, r.db.SQL(), q, model, arg)
}

// Row returns the current row of the record of model with local id, as a row image
// (canonical JSON, as capture writes them); found is false when there is none.
func (r *Relations) Row(ctx context.Context, model, id string) (image []byte, found bool, err error) {
	pk, err := r.primaryKey(ctx, model)
	if err != nil {
		return nil, false, err
	}
	row, found, err := r.db.Get(ctx, model, pk.Name, id)
	if err != nil || !found {
		return nil, false, err
	}
	image, err = json.Marshal(row)
	if err != nil {
		return nil, false, fmt.Errorf("platform relations: encode %s row: %w", model, err)
	}
	return image, true, nil
}

// Find returns the local id of the record of model whose unique identifier field has the
// value key: the first of fields that is a column of model is the one looked in. A model
// that does not exist is CodeUnknownModel, a record that does not exist CodeNotFound.
func (r *Relations) Find(ctx context.Context, model string, fields []string, key string) (string, error) {
	m, err := r.db.Model(ctx, model)
	if err != nil {
		return "", err
	}
	field := ""
	for _, f := range fields {
		if slices.ContainsFunc(m.Columns, func(c protocol.Column) bool { return c.Name == f }) {
			field = f
			break
		}
	}
	if field == "" {
		return "", protocol.Errorf(protocol.CodeBadRequest, "model %q has none of the unique identifier fields (%s)",
			model, strings.Join(fields, ", "))
	}
	pk, err := r.primaryKey(ctx, model)
	if err != nil {
		return "", err
	}
	row, found, err := r.db.Get(ctx, model, field, key)
	if err != nil {
		return "", err
	}
	if !found {
		return "", protocol.Errorf(protocol.CodeNotFound, "model %q has no record with %s %q", model, field, key)
	}
	id, ok := IDText(row[pk.Name])
	if !ok {
		return "", protocol.Errorf(protocol.CodeBadRequest, "the record of %q with %s %q has no usable id", model, field, key)
	}
	return id, nil
}

// Set rewrites the platform relations of the record of model with local id in one
// transaction, creating model_platform when it is missing: rows of platforms no longer
// named are deleted, rows of new ones inserted, and the updated_at of the rows kept is
// touched, so that capture re-evaluates the record for every platform. The writes carry
// no origin: they are this platform's own changes.
func (r *Relations) Set(ctx context.Context, model, id string, platformIDs []int64, now time.Time) error {
	if err := EnsureRelationsTable(ctx, r.db); err != nil {
		return err
	}
	l, err := r.layout(ctx)
	if err != nil {
		return err
	}
	arg, err := idArg(l.modelID, id)
	if err != nil {
		return err
	}
	want := slices.Compact(slices.Sorted(slices.Values(platformIDs)))
	d := r.db.Dialect()
	q := d.QuoteIdent
	w, err := r.db.BeginWrite(ctx)
	if err != nil {
		return err
	}
	defer w.Rollback()
	tx := w.Tx()
	where := " WHERE " + q("model_type") + " = " + d.Placeholder(1) + " AND " + q("model_id") + " = " + d.Placeholder(2)
	stamp := sqldb.FormatDatetime(now)
	kept := map[int64]bool{}
	if l.pk != "" {
		rows, err := tx.QueryContext(ctx, "SELECT "+q(l.pk)+", "+q("platform_id")+" FROM "+q(RelationsTable)+where, model, arg)
		if err != nil {
			return fmt.Errorf("read %s: %w", RelationsTable, err)
		}
		type existing struct {
			pk       any
			platform int64
		}
		var have []existing
		for rows.Next() {
			var e existing
			if err := rows.Scan(&e.pk, &e.platform); err != nil {
				rows.Close()
				return fmt.Errorf("read %s: %w", RelationsTable, err)
			}
			if b, ok := e.pk.([]byte); ok {
				e.pk = string(b)
			}
			have = append(have, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read %s: %w", RelationsTable, err)
		}
		for _, e := range have {
			if _, found := slices.BinarySearch(want, e.platform); !found || kept[e.platform] {
				if _, err := w.Delete(ctx, RelationsTable, l.pk, e.pk); err != nil {
					return err
				}
				continue
			}
			kept[e.platform] = true
			if l.hasUpdatedAt {
				if _, err := w.Update(ctx, RelationsTable, l.pk, e.pk, map[string]any{"updated_at": stamp}); err != nil {
					return err
				}
			}
		}
	} else if _, err := tx.ExecContext(ctx, "DELETE FROM "+q(RelationsTable)+where, model, arg); err != nil {
		return fmt.Errorf("delete from %s: %w", RelationsTable, err)
	}
	for _, p := range want {
		if kept[p] {
			continue
		}
		row := map[string]any{"model_type": model, "model_id": id, "platform_id": p}
		if l.hasCreatedAt {
			row["created_at"] = stamp
		}
		if l.hasUpdatedAt {
			row["updated_at"] = stamp
		}
		if err := w.Insert(ctx, RelationsTable, row); err != nil {
			return err
		}
	}
	return w.Commit()
}

// queryIDs runs a query of one integer column and returns its values.
func queryIDs(ctx context.Context, db *sql.DB, q string, args ...any) ([]int64, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", RelationsTable, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read %s: %w", RelationsTable, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", RelationsTable, err)
	}
	slices.Sort(out)
	return out, nil
}
