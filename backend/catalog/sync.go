package catalog

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// Sync is one one-way sync from a source platform's model to a target platform's model,
// with the Moox Sync columns. Create and Update take the editable fields and ignore the
// rest: the title is generated, and has_errors, error_message and last_sync are observed
// from the agents (RecordStatus).
type Sync struct {
	ID                   int64             `json:"id"`
	SyncableID           *int64            `json:"syncable_id"`
	SyncableType         *string           `json:"syncable_type"`
	SourcePlatformID     int64             `json:"source_platform_id"`
	SourceModel          string            `json:"source_model"`
	TargetPlatformID     int64             `json:"target_platform_id"`
	TargetModel          string            `json:"target_model"`
	UsePlatformRelations bool              `json:"use_platform_relations"`
	IfExists             string            `json:"if_exists"`
	SyncIDs              []string          `json:"sync_ids"`
	SyncAllFields        bool              `json:"sync_all_fields"`
	FieldMappings        map[string]string `json:"field_mappings"`
	UseTransformerClass  *string           `json:"use_transformer_class"`
	// TransformerConfig is the JSON object handed to the transformer (docs/protocol.md
	// section 9), nil when it takes none.
	TransformerConfig json.RawMessage `json:"transformer_config"`
	HasErrors         bool            `json:"has_errors"`
	ErrorMessage      *string         `json:"error_message"`
	Interval          int64           `json:"interval"`
	LastSync          *time.Time      `json:"last_sync"`
	Status            bool            `json:"status"`
	Title             string          `json:"title"`
	CreatedAt         time.Time       `json:"created_at"`
	// UpdatedAt is when an admin last changed the editable fields.
	UpdatedAt time.Time `json:"updated_at"`
}

// Protocol returns the sync as agents receive it in their desired state.
func (s Sync) Protocol() protocol.Sync {
	var ids protocol.IDList
	if s.SyncIDs != nil {
		ids = append(protocol.IDList{}, s.SyncIDs...)
	}
	var fm map[string]string
	if s.FieldMappings != nil {
		fm = make(map[string]string, len(s.FieldMappings))
		for k, v := range s.FieldMappings {
			fm[k] = v
		}
	}
	return protocol.Sync{
		ID:                   s.ID,
		Status:               s.Status,
		Title:                s.Title,
		SourcePlatformID:     s.SourcePlatformID,
		SourceModel:          s.SourceModel,
		TargetPlatformID:     s.TargetPlatformID,
		TargetModel:          s.TargetModel,
		UsePlatformRelations: s.UsePlatformRelations,
		IfExists:             s.IfExists,
		SyncIDs:              ids,
		SyncAllFields:        s.SyncAllFields,
		FieldMappings:        fm,
		UseTransformerClass:  cloneString(s.UseTransformerClass),
		TransformerConfig:    slices.Clone(s.TransformerConfig),
		Interval:             s.Interval,
	}
}

// Title generates a sync's title as Moox does:
// "source.domain (source_model) to target.domain (target_model)", plus " by platform"
// when platform relations decide which records go where.
func Title(sourceDomain, sourceModel, targetDomain, targetModel string, usePlatformRelations bool) string {
	t := fmt.Sprintf("%s (%s) to %s (%s)", sourceDomain, sourceModel, targetDomain, targetModel)
	if usePlatformRelations {
		t += " by platform"
	}
	return t
}

// identRE matches a model (table) or field (column) name as syncs name them.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

const (
	maxTransformerLen   = 255
	maxSyncableTypeLen  = 255
	maxSyncIDLen        = 255
	identRequirement    = "letters, digits and underscores, not starting with a digit, at most 64 characters"
	syncIDsRequirements = "each record identifier is 1 to 255 characters"
)

// normalize canonicalises and validates the fields of s that need no database, in the
// order the sync form shows them.
func (s *Sync) normalize() error {
	if s.SourcePlatformID <= 0 {
		return invalid("source_platform_id", "source platform is required")
	}
	var err error
	if s.SourceModel, err = normalizeModel("source_model", "source", s.SourceModel); err != nil {
		return err
	}
	if s.TargetPlatformID <= 0 {
		return invalid("target_platform_id", "target platform is required")
	}
	if s.TargetModel, err = normalizeModel("target_model", "target", s.TargetModel); err != nil {
		return err
	}
	if s.SourcePlatformID == s.TargetPlatformID && strings.EqualFold(s.SourceModel, s.TargetModel) {
		return invalid("target_model", "a sync cannot have the same platform and model as source and target")
	}

	s.IfExists = strings.TrimSpace(s.IfExists)
	switch s.IfExists {
	case "":
		s.IfExists = protocol.IfExistsUpdate
	case protocol.IfExistsUpdate, protocol.IfExistsSkip, protocol.IfExistsError:
	default:
		return invalid("if_exists", "if_exists must be %q, %q or %q", protocol.IfExistsUpdate, protocol.IfExistsSkip, protocol.IfExistsError)
	}

	if s.Interval < 1 {
		return invalid("interval", "interval must be at least 1 minute")
	}

	if err := s.normalizeMappings(); err != nil {
		return err
	}

	ids, err := normalizeSyncIDs(s.SyncIDs)
	if err != nil {
		return err
	}
	s.SyncIDs = ids

	s.UseTransformerClass = trimmedOrNil(s.UseTransformerClass)
	if t := s.UseTransformerClass; t != nil {
		if utf8.RuneCountInString(*t) > maxTransformerLen || strings.ContainsFunc(*t, isSpaceOrControl) {
			return invalid("use_transformer_class", "use_transformer_class must be a registered transformer name without spaces, at most %d characters", maxTransformerLen)
		}
	}

	if err := s.normalizeTransformerConfig(); err != nil {
		return err
	}

	s.SyncableType = trimmedOrNil(s.SyncableType)
	if t := s.SyncableType; t != nil && (utf8.RuneCountInString(*t) > maxSyncableTypeLen || hasControl(*t)) {
		return invalid("syncable_type", "syncable_type must be at most %d characters without control characters", maxSyncableTypeLen)
	}
	return nil
}

// normalizeTransformerConfig checks transformer_config: absent or null is nil; else a JSON
// object, compacted, for a sync that names a transformer. The config of a built-in
// transformer (declarative, lowercase_email) is checked as its agent will check it; the
// others' on Sync Platforms, by the agent that has them.
func (s *Sync) normalizeTransformerConfig() error {
	raw := bytes.TrimSpace(s.TransformerConfig)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		s.TransformerConfig = nil
		return s.checkBuiltInTransformer()
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return invalid("transformer_config", "transformer_config must be a JSON object")
	}
	if s.UseTransformerClass == nil {
		return invalid("transformer_config", "transformer_config is set but no transformer is chosen")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return invalid("transformer_config", "transformer_config must be a JSON object")
	}
	s.TransformerConfig = buf.Bytes()
	return s.checkBuiltInTransformer()
}

// checkBuiltInTransformer checks the config of a built-in transformer.
func (s *Sync) checkBuiltInTransformer() error {
	if s.UseTransformerClass == nil {
		return nil
	}
	if _, builtIn := builtInTransformers.Lookup(*s.UseTransformerClass); builtIn {
		if _, err := builtInTransformers.New(*s.UseTransformerClass, s.TransformerConfig); err != nil {
			return invalid("transformer_config", "%s", strings.TrimPrefix(err.Error(), transform.ErrBadConfig.Error()+": "))
		}
	}
	return nil
}

// builtInTransformers are the transformers every agent has.
var builtInTransformers = transform.Default()

// normalizeModel trims a model name and checks that it is a table name.
func normalizeModel(field, side, model string) (string, error) {
	model = strings.TrimSpace(model)
	if model == "" {
		return "", invalid(field, "%s model is required", side)
	}
	if !identRE.MatchString(model) {
		return "", invalid(field, "%s model %q must be a table name: %s", side, model, identRequirement)
	}
	return model, nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// normalizeMappings checks field_mappings: required when not all fields sync; every source
// and target field a column name; no two source fields writing the same target column.
func (s *Sync) normalizeMappings() error {
	if len(s.FieldMappings) == 0 {
		s.FieldMappings = nil
		if !s.SyncAllFields {
			return invalid("field_mappings", "field_mappings are required when not all fields are synced: map at least one source field to a target field")
		}
		return nil
	}
	clean := make(map[string]string, len(s.FieldMappings))
	targets := make(map[string]string, len(s.FieldMappings))
	for src, dst := range s.FieldMappings {
		src, dst = strings.TrimSpace(src), strings.TrimSpace(dst)
		if !identRE.MatchString(src) {
			return invalid("field_mappings", "source field %q must be a column name: %s", src, identRequirement)
		}
		if !identRE.MatchString(dst) {
			return invalid("field_mappings", "target field %q (for %s) must be a column name: %s", dst, src, identRequirement)
		}
		if _, dup := clean[src]; dup {
			return invalid("field_mappings", "source field %q is mapped twice", src)
		}
		if other, dup := targets[strings.ToLower(dst)]; dup {
			a, b := other, src
			if b < a {
				a, b = b, a
			}
			return invalid("field_mappings", "source fields %q and %q both map to target field %q", a, b, dst)
		}
		clean[src] = dst
		targets[strings.ToLower(dst)] = src
	}
	s.FieldMappings = clean
	return nil
}

// normalizeSyncIDs trims the record identifiers and drops repeats; an empty list is nil
// (all records), as in Moox.
func normalizeSyncIDs(ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		id = strings.TrimSpace(id)
		if id == "" || utf8.RuneCountInString(id) > maxSyncIDLen || hasControl(id) {
			return nil, invalid("sync_ids", "sync_ids[%d]: %s, without control characters", i, syncIDsRequirements)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// resolveSync checks s against the catalog inside tx: both platforms exist, no other sync has
// the same route, and it sets the generated title.
func resolveSync(ctx context.Context, tx *sql.Tx, s *Sync) error {
	src, err := getPlatform(ctx, tx, s.SourcePlatformID)
	if errors.Is(err, ErrNotFound) {
		return invalid("source_platform_id", "source platform %d does not exist", s.SourcePlatformID)
	}
	if err != nil {
		return err
	}
	dst, err := getPlatform(ctx, tx, s.TargetPlatformID)
	if errors.Is(err, ErrNotFound) {
		return invalid("target_platform_id", "target platform %d does not exist", s.TargetPlatformID)
	}
	if err != nil {
		return err
	}
	var otherID int64
	err = tx.QueryRowContext(ctx, `SELECT id FROM syncs WHERE source_platform_id = ? AND source_model = ? COLLATE NOCASE
		AND target_platform_id = ? AND target_model = ? COLLATE NOCASE AND id != ?`,
		s.SourcePlatformID, s.SourceModel, s.TargetPlatformID, s.TargetModel, s.ID).Scan(&otherID)
	switch {
	case err == nil:
		return duplicate("target_model", "sync #%d already syncs %s (%s) to %s (%s)", otherID, src.Domain, s.SourceModel, dst.Domain, s.TargetModel)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("check sync route: %w", err)
	}
	s.Title = Title(src.Domain, s.SourceModel, dst.Domain, s.TargetModel, s.UsePlatformRelations)
	return nil
}

// syncColumns lists the columns scanSync reads, in order.
const syncColumns = `id, syncable_id, syncable_type, source_platform_id, source_model, target_platform_id,
	target_model, use_platform_relations, if_exists, sync_ids, sync_all_fields, field_mappings,
	use_transformer_class, has_errors, error_message, "interval", last_sync, status, title, created_at, updated_at,
	transformer_config`

func scanSync(row scanner) (Sync, error) {
	var (
		s                                              Sync
		syncableID                                     sql.NullInt64
		syncableType, ids, mappings, transformer, emsg sql.NullString
		transformerConfig                              sql.NullString
		lastSync                                       sql.NullString
		created, updated                               string
	)
	err := row.Scan(&s.ID, &syncableID, &syncableType, &s.SourcePlatformID, &s.SourceModel, &s.TargetPlatformID,
		&s.TargetModel, &s.UsePlatformRelations, &s.IfExists, &ids, &s.SyncAllFields, &mappings,
		&transformer, &s.HasErrors, &emsg, &s.Interval, &lastSync, &s.Status, &s.Title, &created, &updated,
		&transformerConfig)
	if err != nil {
		return Sync{}, err
	}
	if syncableID.Valid {
		v := syncableID.Int64
		s.SyncableID = &v
	}
	s.SyncableType, s.UseTransformerClass, s.ErrorMessage = stringPtr(syncableType), stringPtr(transformer), stringPtr(emsg)
	if ids.Valid {
		if err := json.Unmarshal([]byte(ids.String), &s.SyncIDs); err != nil {
			return Sync{}, fmt.Errorf("sync %d: decode sync_ids: %w", s.ID, err)
		}
	}
	if transformerConfig.Valid {
		s.TransformerConfig = json.RawMessage(transformerConfig.String)
	}
	if mappings.Valid {
		if err := json.Unmarshal([]byte(mappings.String), &s.FieldMappings); err != nil {
			return Sync{}, fmt.Errorf("sync %d: decode field_mappings: %w", s.ID, err)
		}
	}
	if s.LastSync, err = parseTimePtr(lastSync); err != nil {
		return Sync{}, err
	}
	if s.CreatedAt, err = parseTime(created); err != nil {
		return Sync{}, err
	}
	if s.UpdatedAt, err = parseTime(updated); err != nil {
		return Sync{}, err
	}
	return s, nil
}

// syncArgs encodes the editable columns of a sync for INSERT and UPDATE, in the order
// syncable_id, syncable_type, source_platform_id, source_model, target_platform_id,
// target_model, use_platform_relations, if_exists, sync_ids, sync_all_fields,
// field_mappings, use_transformer_class, interval, status, title, transformer_config. nil
// lists stay NULL.
func syncArgs(s Sync) ([]any, error) {
	var (
		syncableID    sql.NullInt64
		ids, mappings sql.NullString
	)
	if s.SyncableID != nil {
		syncableID = sql.NullInt64{Int64: *s.SyncableID, Valid: true}
	}
	if s.SyncIDs != nil {
		b, err := json.Marshal(s.SyncIDs)
		if err != nil {
			return nil, fmt.Errorf("encode sync_ids: %w", err)
		}
		ids = sql.NullString{String: string(b), Valid: true}
	}
	if s.FieldMappings != nil {
		b, err := json.Marshal(s.FieldMappings)
		if err != nil {
			return nil, fmt.Errorf("encode field_mappings: %w", err)
		}
		mappings = sql.NullString{String: string(b), Valid: true}
	}
	var config sql.NullString
	if s.TransformerConfig != nil {
		config = sql.NullString{String: string(s.TransformerConfig), Valid: true}
	}
	return []any{syncableID, nullString(s.SyncableType), s.SourcePlatformID, s.SourceModel, s.TargetPlatformID,
		s.TargetModel, s.UsePlatformRelations, s.IfExists, ids, s.SyncAllFields, mappings,
		nullString(s.UseTransformerClass), s.Interval, s.Status, s.Title, config}, nil
}

// SyncFilter selects syncs; a zero field matches every value.
type SyncFilter struct {
	SourcePlatformID int64 `json:"source_platform_id"`
	TargetPlatformID int64 `json:"target_platform_id"`
	// PlatformID matches syncs where the platform is source or target.
	PlatformID int64 `json:"platform_id"`
}

func listSyncs(ctx context.Context, q queryer, f SyncFilter) ([]Sync, error) {
	var (
		where []string
		args  []any
	)
	if f.SourcePlatformID != 0 {
		where, args = append(where, "source_platform_id = ?"), append(args, f.SourcePlatformID)
	}
	if f.TargetPlatformID != 0 {
		where, args = append(where, "target_platform_id = ?"), append(args, f.TargetPlatformID)
	}
	if f.PlatformID != 0 {
		where, args = append(where, "(source_platform_id = ? OR target_platform_id = ?)"), append(args, f.PlatformID, f.PlatformID)
	}
	query := `SELECT ` + syncColumns + ` FROM syncs`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	out, err := queryAll(ctx, q, scanSync, query+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list syncs: %w", err)
	}
	return out, nil
}

func getSync(ctx context.Context, q queryer, id int64) (Sync, error) {
	s, err := scanSync(q.QueryRowContext(ctx, `SELECT `+syncColumns+` FROM syncs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Sync{}, fmt.Errorf("sync %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Sync{}, fmt.Errorf("get sync %d: %w", id, err)
	}
	return s, nil
}

// Syncs returns the syncs the filter selects, ordered by id.
func (s *Store) Syncs(ctx context.Context, f SyncFilter) ([]Sync, error) {
	return listSyncs(ctx, s.db, f)
}

// SyncsForPlatform returns the syncs where the platform is source or target: those its
// agent receives in its desired state. ErrNotFound when the platform does not exist.
func (s *Store) SyncsForPlatform(ctx context.Context, platformID int64) ([]Sync, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("syncs for platform: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := getPlatform(ctx, tx, platformID); err != nil {
		return nil, err
	}
	return listSyncs(ctx, tx, SyncFilter{PlatformID: platformID})
}

// Sync returns the sync with the given id, or ErrNotFound.
func (s *Store) Sync(ctx context.Context, id int64) (Sync, error) {
	return getSync(ctx, s.db, id)
}

// CreateSync validates and stores a new sync with a generated title and returns it as
// stored. The revision is bumped.
func (s *Store) CreateSync(ctx context.Context, sy Sync) (Sync, error) {
	if err := sy.normalize(); err != nil {
		return Sync{}, err
	}
	sy.ID = 0
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := resolveSync(ctx, tx, &sy); err != nil {
			return err
		}
		args, err := syncArgs(sy)
		if err != nil {
			return err
		}
		now := formatTime(s.now())
		res, err := tx.ExecContext(ctx, `INSERT INTO syncs
			(syncable_id, syncable_type, source_platform_id, source_model, target_platform_id, target_model,
			 use_platform_relations, if_exists, sync_ids, sync_all_fields, field_mappings, use_transformer_class,
			 "interval", status, title, transformer_config, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, append(args, now, now)...)
		if isUniqueViolation(err) {
			return fmt.Errorf("create sync: %w", ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create sync: %w", err)
		}
		if id, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("create sync: %w", err)
		}
		_, err = bumpRevision(ctx, tx)
		return err
	})
	if err != nil {
		return Sync{}, err
	}
	return s.Sync(ctx, id)
}

// syncEdit is the part of a sync an admin edits, with the generated title.
type syncEdit struct {
	SyncableID           *int64
	SyncableType         *string
	SourcePlatformID     int64
	SourceModel          string
	TargetPlatformID     int64
	TargetModel          string
	UsePlatformRelations bool
	IfExists             string
	SyncIDs              []string
	SyncAllFields        bool
	FieldMappings        map[string]string
	UseTransformerClass  *string
	TransformerConfig    string
	Interval             int64
	Status               bool
	Title                string
}

func (s Sync) edit() syncEdit {
	return syncEdit{s.SyncableID, s.SyncableType, s.SourcePlatformID, s.SourceModel, s.TargetPlatformID,
		s.TargetModel, s.UsePlatformRelations, s.IfExists, s.SyncIDs, s.SyncAllFields, s.FieldMappings,
		s.UseTransformerClass, string(s.TransformerConfig), s.Interval, s.Status, s.Title}
}

// UpdateSync replaces the editable fields of sync sy.ID, generates its title anew and
// returns it as stored. An update that changes nothing writes nothing and leaves the
// revision alone; any other bumps it.
func (s *Store) UpdateSync(ctx context.Context, sy Sync) (Sync, error) {
	if err := sy.normalize(); err != nil {
		return Sync{}, err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		old, err := getSync(ctx, tx, sy.ID)
		if err != nil {
			return err
		}
		if err := resolveSync(ctx, tx, &sy); err != nil {
			return err
		}
		if reflect.DeepEqual(old.edit(), sy.edit()) {
			return nil
		}
		args, err := syncArgs(sy)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE syncs SET syncable_id = ?, syncable_type = ?, source_platform_id = ?,
			source_model = ?, target_platform_id = ?, target_model = ?, use_platform_relations = ?, if_exists = ?,
			sync_ids = ?, sync_all_fields = ?, field_mappings = ?, use_transformer_class = ?, "interval" = ?,
			status = ?, title = ?, transformer_config = ?, updated_at = ? WHERE id = ?`, append(args, formatTime(s.now()), sy.ID)...)
		if isUniqueViolation(err) {
			return fmt.Errorf("update sync %d: %w", sy.ID, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("update sync %d: %w", sy.ID, err)
		}
		_, err = bumpRevision(ctx, tx)
		return err
	})
	if err != nil {
		return Sync{}, err
	}
	return s.Sync(ctx, sy.ID)
}

// DeleteSync deletes a sync and bumps the revision; ErrNotFound when it does not exist.
func (s *Store) DeleteSync(ctx context.Context, id int64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM syncs WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete sync %d: %w", id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("delete sync %d: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("sync %d: %w", id, ErrNotFound)
		}
		_, err = bumpRevision(ctx, tx)
		return err
	})
}

// retitleSyncs generates anew the titles of the syncs of a platform whose domain changed.
func retitleSyncs(ctx context.Context, tx *sql.Tx, platformID int64) error {
	syncs, err := listSyncs(ctx, tx, SyncFilter{PlatformID: platformID})
	if err != nil {
		return err
	}
	for _, sy := range syncs {
		src, err := getPlatform(ctx, tx, sy.SourcePlatformID)
		if err != nil {
			return err
		}
		dst, err := getPlatform(ctx, tx, sy.TargetPlatformID)
		if err != nil {
			return err
		}
		title := Title(src.Domain, sy.SourceModel, dst.Domain, sy.TargetModel, sy.UsePlatformRelations)
		if _, err := tx.ExecContext(ctx, `UPDATE syncs SET title = ? WHERE id = ?`, title, sy.ID); err != nil {
			return fmt.Errorf("retitle sync %d: %w", sy.ID, err)
		}
	}
	return nil
}
