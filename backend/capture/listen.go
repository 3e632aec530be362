package capture

import (
	"context"
	"database/sql/driver"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// listen keeps a connection LISTENing on the triggers' notification channel and wakes the
// Pump for every notification, reconnecting with back-off after an error, until ctx ends.
func (p *Pump) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		err := p.listenOnce(ctx)
		p.listening.Store(false)
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("listening for change notifications failed; polling meanwhile", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// listenOnce takes a connection out of the application database's pool, LISTENs on it and
// waits for notifications until an error or the end of ctx. The connection is discarded
// afterwards rather than returned to the pool with a LISTEN on it.
func (p *Pump) listenOnce(ctx context.Context) error {
	conn, err := p.app.SQL().Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var listenErr error
	_ = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			listenErr = errors.New("the PostgreSQL driver is not pgx")
			return driver.ErrBadConn
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{sqldb.NotifyChannel}.Sanitize()); err != nil {
			listenErr = err
			return driver.ErrBadConn
		}
		p.listening.Store(true)
		p.log.Debug("listening for change notifications", "channel", sqldb.NotifyChannel)
		p.poke() // changes committed before LISTEN sent no notification to this connection
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				listenErr = err
				return driver.ErrBadConn
			}
			p.poke()
		}
	})
	return listenErr
}
