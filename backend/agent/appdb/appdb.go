// Package appdb connects the agent to its platform's application database: the schema
// (sqldb) for /api/models and the applier (apply) for received batches, behind the agent's
// Applier and ModelSource interfaces.
package appdb

import (
	"context"
	"fmt"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/apply"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// Config holds the identifier settings of the agent's config (Moox sync.php).
type Config struct {
	UniqueIdentifierFields []string
	LocalIdentifierFields  []string
}

// DB is an open application database serving the agent.
type DB struct {
	db      *sqldb.DB
	applier *apply.Applier
}

var (
	_ agent.Applier     = (*DB)(nil)
	_ agent.ModelSource = (*DB)(nil)
)

// Open connects to the application database named by dsn (see sqldb.Open).
func Open(ctx context.Context, dsn string, cfg Config) (*DB, error) {
	db, err := sqldb.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &DB{db: db, applier: apply.New(db, apply.Config{
		UniqueIdentifierFields: cfg.UniqueIdentifierFields,
		LocalIdentifierFields:  cfg.LocalIdentifierFields,
	})}, nil
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
