package deliver_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/capture/capturetest"
	"github.com/mooxsync/mooxsync/backend/deliver"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// BenchmarkPipelineSQLite measures capture and delivery end to end: b.N rows written by
// plain SQL into a SQLite application table with capture triggers are moved by the Pump to
// the queue and delivered by a sender to a receiver that verifies the signature and
// discards the batch. The rows are written before the clock starts; rows/s is the rate at
// which the backlog drains.
func BenchmarkPipelineSQLite(b *testing.B) {
	ctx := context.Background()
	app := sqldbtest.MustOpenSQLite(b)
	sqldbtest.CreatePosts(b, app, "posts")
	state := capturetest.MustOpenState(b)
	pump, err := capture.New(ctx, app, state, capture.Options{})
	if err != nil {
		b.Fatal(err)
	}
	m, err := deliver.NewManager(ctx, state, pump.Queue(), deliver.Options{Capture: pump})
	if err != nil {
		b.Fatal(err)
	}
	rc := newReceiver(b, false)
	rc.keep, rc.light = false, true
	st := stateWith(rc.peer())
	if err := m.Apply(ctx, st, self, deliver.Config{}); err != nil {
		b.Fatal(err)
	}
	if err := pump.Apply(ctx, st, self); err != nil {
		b.Fatal(err)
	}

	const perStatement = 500
	for i := 0; i < b.N; i += perStatement {
		var sb strings.Builder
		sb.WriteString(`INSERT INTO posts (ulid, slug, title, body, views, price, rating, published, meta, published_at, created_at) VALUES `)
		for j := i; j < min(i+perStatement, b.N); j++ {
			if j > i {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, `('01JDQ%021d', 'post-%d', 'Post number %d', 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.', %d, 19.99, 4.5, 1, '{"tags":["news","go"]}', '2026-11-26 12:00:00', '2026-11-26 12:00:00.123')`, j, j, j, j)
		}
		sqldbtest.MustExec(b, app, map[string]string{"": sb.String()})
	}

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	b.ResetTimer()
	wg.Go(func() { _ = pump.Run(rctx) })
	wg.Go(func() { _ = m.Run(rctx) })
	deadline := time.Now().Add(10 * time.Minute)
	for rc.changeCount() < b.N && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	if got := rc.changeCount(); got != b.N {
		b.Fatalf("delivered %d of %d", got, b.N)
	}
	rc.check()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
