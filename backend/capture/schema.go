package capture

import (
	"context"
	"strconv"
	"strings"

	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// schemaStamp returns a value that changes whenever the columns of the given tables may
// have changed, cheaply enough to ask every few hundred milliseconds; ok is false when the
// dialect needs no such probe. SQLite and MySQL triggers name every column, so a column
// added or dropped must reach them at once: until they are reinstalled, an added column is
// missing from the captured images, and on MySQL every write to a table that lost a
// column fails. PostgreSQL triggers take the whole row (row_to_json), whatever its columns.
func schemaStamp(ctx context.Context, app *sqldb.DB, tables []string) (stamp string, ok bool, err error) {
	switch app.Dialect().Name() {
	case "sqlite":
		var v int64
		if err := app.SQL().QueryRowContext(ctx, `PRAGMA schema_version`).Scan(&v); err != nil {
			return "", true, err
		}
		return strconv.FormatInt(v, 10), true, nil
	case "mysql":
		if len(tables) == 0 {
			return "", true, nil
		}
		args := make([]any, len(tables))
		for i, t := range tables {
			args[i] = t
		}
		var n, sum int64
		err := app.SQL().QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS(':', TABLE_NAME,
			COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE))), 0) FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?`+strings.Repeat(", ?", len(tables)-1)+`)`, args...).
			Scan(&n, &sum)
		if err != nil {
			return "", true, err
		}
		return strconv.FormatInt(n, 10) + ":" + strconv.FormatInt(sum, 10), true, nil
	}
	return "", false, nil
}
