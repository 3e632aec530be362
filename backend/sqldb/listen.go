package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/stdlib"
)

// ErrNoNotifications is returned by Listen on databases that cannot notify (SQLite,
// MySQL): readers poll there.
var ErrNoNotifications = errors.New("this database does not notify about changes: poll")

// Listener holds a PostgreSQL connection that LISTENs on NotifyChannel.
type Listener struct {
	conn *sql.Conn
}

// Listen starts listening for the notifications the capture triggers send after every
// change (PostgreSQL only; ErrNoNotifications elsewhere). The listener holds one
// connection of the pool until Close.
func (db *DB) Listen(ctx context.Context) (*Listener, error) {
	if db.d.flavor() != flavorPostgres {
		return nil, ErrNoNotifications
	}
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	err = conn.Raw(func(dc any) error {
		_, err := dc.(*stdlib.Conn).Conn().Exec(ctx, "LISTEN "+NotifyChannel)
		return err
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	return &Listener{conn: conn}, nil
}

// Wait blocks until a notification arrives (changes were committed since the last Wait,
// or since Listen) or ctx ends. After an error the Listener is spent: Close it and Listen
// again.
func (l *Listener) Wait(ctx context.Context) error {
	return l.conn.Raw(func(dc any) error {
		_, err := dc.(*stdlib.Conn).Conn().WaitForNotification(ctx)
		return err
	})
}

// Close stops listening and gives the connection back.
func (l *Listener) Close() error {
	_ = l.conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		if c.IsClosed() {
			return nil
		}
		_, err := c.Exec(context.Background(), "UNLISTEN "+NotifyChannel)
		return err
	})
	return l.conn.Close()
}
