package sqldb

import "context"

// TriggersOn lists the mooxsync triggers on a table, for tests.
func (db *DB) TriggersOn(ctx context.Context, tableName string) ([]string, error) {
	return db.d.triggersOn(ctx, db.sql, tableName)
}
