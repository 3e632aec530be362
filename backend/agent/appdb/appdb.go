// Package appdb connects the agent to its platform's application database: the schema
// (sqldb) for /api/models, the applier (apply) for received batches and the platform
// relations (capture.Relations) for /api/relations, behind the agent's Applier,
// ModelSource and RelationStore interfaces.
package appdb

import (
	"context"
	"fmt"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/apply"
	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/handler"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// Config holds the identifier settings and sync bindings of the agent's config (Moox
// sync.php).
type Config struct {
	UniqueIdentifierFields []string
	LocalIdentifierFields  []string
	// Handlers holds the sync handlers SyncBindings may name (default handler.Default()).
	Handlers *handler.Registry
	// SyncBindings bind target models to sync handlers (the agent's sync_bindings).
	SyncBindings map[string]handler.Binding
}

// ApplyConfig is the applier's configuration: check it with Validate before Open.
func (c Config) ApplyConfig() apply.Config {
	return apply.Config{
		UniqueIdentifierFields: c.UniqueIdentifierFields,
		LocalIdentifierFields:  c.LocalIdentifierFields,
		Handlers:               c.Handlers,
		SyncBindings:           c.SyncBindings,
	}
}

// DB is an open application database serving the agent.
type DB struct {
	db      *sqldb.DB
	applier *apply.Applier
	rel     *capture.Relations
	unique  []string
	now     func() time.Time
}

var (
	_ agent.Applier       = (*DB)(nil)
	_ agent.ModelSource   = (*DB)(nil)
	_ agent.RelationStore = (*DB)(nil)
)

// Open connects to the application database named by dsn (see sqldb.Open).
func Open(ctx context.Context, dsn string, cfg Config) (*DB, error) {
	db, err := sqldb.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	unique := cfg.UniqueIdentifierFields
	if len(unique) == 0 {
		unique = apply.DefaultUniqueIdentifierFields
	}
	return &DB{db: db, applier: apply.New(db, cfg.ApplyConfig()), rel: capture.NewRelations(db), unique: unique,
		now: time.Now}, nil
}

// SQLDB returns the application database, for capture.
func (d *DB) SQLDB() *sqldb.DB { return d.db }

// Close closes the connection pool.
func (d *DB) Close() error { return d.db.Close() }

// Models lists the application's tables.
func (d *DB) Models(ctx context.Context) ([]protocol.Model, error) {
	models, err := d.db.Models(ctx)
	if err != nil {
		return nil, fmt.Errorf("introspect application database: %w", err)
	}
	return models, nil
}

// CheckBatch checks a batch against the live schema without writing.
func (d *DB) CheckBatch(ctx context.Context, s protocol.Sync, b *protocol.Batch) error {
	return d.applier.CheckBatch(ctx, s, b)
}

// ApplyBatch applies a batch exactly once.
func (d *DB) ApplyBatch(ctx context.Context, s protocol.Sync, b *protocol.Batch) (agent.ApplyResult, error) {
	res, err := d.applier.ApplyBatch(ctx, s, b)
	if err != nil {
		return agent.ApplyResult{}, err
	}
	return agent.ApplyResult{AlreadyApplied: res.AlreadyApplied}, nil
}

// record finds the local id of the record of model whose first unique identifier field
// that model has holds key.
func (d *DB) record(ctx context.Context, model, key string) (string, error) {
	if model == capture.RelationsTable {
		return "", protocol.Errorf(protocol.CodeBadRequest, "%s holds the relations; name the model they are of", model)
	}
	return d.rel.Find(ctx, model, d.unique, key)
}

// Relations returns the platforms the record of model with unique identifier key belongs
// to (model_platform), sorted.
func (d *DB) Relations(ctx context.Context, model, key string) ([]int64, error) {
	id, err := d.record(ctx, model, key)
	if err != nil {
		return nil, err
	}
	return d.rel.Platforms(ctx, model, id)
}

// SetRelations rewrites the record's model_platform rows in one transaction (creating the
// table when it is missing) and returns its relations as stored.
func (d *DB) SetRelations(ctx context.Context, model, key string, platformIDs []int64) ([]int64, error) {
	id, err := d.record(ctx, model, key)
	if err != nil {
		return nil, err
	}
	if err := d.rel.Set(ctx, model, id, platformIDs, d.now()); err != nil {
		return nil, fmt.Errorf("set platform relations of %s %s: %w", model, key, err)
	}
	return d.rel.Platforms(ctx, model, id)
}
