package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// rawUpsert is the target's own limit: rows upserted with plain database/sql into a fresh
// SQLite file with the agent's settings, 1000 rows per transaction in prepared multi-row
// INSERT … ON CONFLICT(ulid) DO UPDATE statements of rowsPerStatement rows.
func rawUpsert(ctx context.Context, dir string, rows, perTx int, file string) (time.Duration, error) {
	path := filepath.Join(dir, file)
	if err := createPosts(path, "posts"); err != nil {
		return 0, err
	}
	db, err := openSQLite(path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	w := newWriter(db, "posts", upsertClause())
	defer w.close()
	start := time.Now()
	for from := 0; from < rows; from += perTx {
		if err := w.tx(ctx, 'R', from, min(from+perTx, rows)); err != nil {
			return 0, err
		}
	}
	d := time.Since(start)
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM posts`).Scan(&n); err != nil || n != rows {
		return 0, fmt.Errorf("raw upsert: %d rows written, want %d (%v)", n, rows, err)
	}
	return d, nil
}

// commitRate is the application's own commit rate with capture on: rows written as the
// sustained run writes them, into a fresh SQLite file (like the raw baseline) holding the
// posts table, the agent's outbox tables and the capture triggers copied from the source's
// database, with nothing reading the outbox. It returns how long the commits took.
func commitRate(ctx context.Context, dir, sourcePath string, rows, perTx int) (time.Duration, error) {
	sdb, err := openReadOnly(sourcePath)
	if err != nil {
		return 0, err
	}
	var ddl []string
	rs, err := sdb.Query(`SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND (name LIKE 'mooxsync%' OR
		(type = 'trigger' AND tbl_name = 'posts')) ORDER BY type = 'trigger', name`)
	if err == nil {
		for rs.Next() {
			var q string
			if err = rs.Scan(&q); err != nil {
				break
			}
			ddl = append(ddl, q)
		}
		rs.Close()
	}
	sdb.Close()
	if err != nil {
		return 0, fmt.Errorf("read the capture schema of the source: %w", err)
	}
	path := filepath.Join(dir, "capture.db")
	if err := createPosts(path, "posts"); err != nil {
		return 0, err
	}
	db, err := openSQLite(path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	triggers := 0
	for _, q := range ddl {
		if _, err := db.Exec(q); err != nil {
			return 0, fmt.Errorf("copy the capture schema: %w", err)
		}
		if strings.HasPrefix(strings.ToUpper(q), "CREATE TRIGGER") {
			triggers++
		}
	}
	if triggers == 0 {
		return 0, errors.New("the source's posts table has no capture triggers")
	}
	w := newWriter(db, "posts", "")
	defer w.close()
	start := time.Now()
	for from := 0; from < rows; from += perTx {
		if err := w.tx(ctx, 'C', from, min(from+perTx, rows)); err != nil {
			return 0, err
		}
	}
	d := time.Since(start)
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM mooxsync_changes`).Scan(&n); err != nil || n != rows {
		return 0, fmt.Errorf("capture ceiling: %d changes captured of %d rows (%v)", n, rows, err)
	}
	return d, nil
}

// counter follows the row count of a target table that only grows by inserts: each poll
// counts the rows above the highest rowid seen so far (AUTOINCREMENT rowids only grow, and
// a reader sees whole commits), which is COUNT(*) of the table without rescanning it.
type counter struct {
	stmt  *sql.Stmt
	n     int64
	maxID int64
}

func newCounter(db *sql.DB, table string) (*counter, error) {
	stmt, err := db.Prepare(`SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM "` + table + `" WHERE rowid > ?`)
	if err != nil {
		return nil, err
	}
	return &counter{stmt: stmt}, nil
}

func (c *counter) poll() (int64, error) {
	var n, maxID int64
	if err := c.stmt.QueryRow(c.maxID).Scan(&n, &maxID); err != nil {
		return c.n, err
	}
	if n > 0 {
		c.n += n
		c.maxID = maxID
	}
	return c.n, nil
}

// e2eResult is the sustained run.
type e2eResult struct {
	rows       int
	total      time.Duration // first commit to the last row seen on the target
	writer     time.Duration // first commit to the last commit
	milestones []time.Duration
	cpu        []time.Duration // per agent (source, target)
	selfCPU    time.Duration
	pollEvery  time.Duration
}

// e2e writes rows into the source's posts table in transactions of perTx rows as fast as
// the writer goes, and measures from the first commit until the target's table holds them
// all (polled every pollEvery with a read-only connection to the target's file).
func e2e(ctx context.Context, src, dst *platform, rows, perTx int, timeout time.Duration) (e2eResult, error) {
	res := e2eResult{rows: rows, pollEvery: 20 * time.Millisecond}
	sdb, err := openSQLite(src.dbPath)
	if err != nil {
		return res, err
	}
	defer sdb.Close()
	tdb, err := openReadOnly(dst.dbPath)
	if err != nil {
		return res, err
	}
	defer tdb.Close()
	cnt, err := newCounter(tdb, "posts")
	if err != nil {
		return res, err
	}
	defer cnt.stmt.Close()
	if n, err := cnt.poll(); err != nil || n != 0 {
		return res, fmt.Errorf("target posts not empty before the run: %d rows (%v)", n, err)
	}

	meter := startCPU(src.pid(), dst.pid())
	firstCommit := make(chan time.Time, 1)
	type writerDone struct {
		last time.Time
		err  error
	}
	wdone := make(chan writerDone, 1)
	go func() {
		w := newWriter(sdb, "posts", "")
		defer w.close()
		var last time.Time
		for from := 0; from < rows; from += perTx {
			if err := w.tx(ctx, 'E', from, min(from+perTx, rows)); err != nil {
				wdone <- writerDone{err: err}
				return
			}
			last = time.Now()
			if from == 0 {
				firstCommit <- last
			}
		}
		wdone <- writerDone{last: last}
	}()

	var t0, lastCommit time.Time
	writing := true
	marks := []int64{int64(rows) / 4, int64(rows) / 2, int64(rows) * 3 / 4}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(res.pollEvery)
	defer tick.Stop()
	for {
		select {
		case t := <-firstCommit:
			t0 = t
		case wd := <-wdone:
			if wd.err != nil {
				return res, fmt.Errorf("source writer: %w", wd.err)
			}
			if t0.IsZero() {
				t0 = <-firstCommit // sent before the writer ends
			}
			writing = false
			lastCommit = wd.last
			res.writer = lastCommit.Sub(t0)
			deadline = time.Now().Add(timeout)
		case <-tick.C:
			n, err := cnt.poll()
			now := time.Now()
			if err != nil {
				return res, fmt.Errorf("poll target: %w", err)
			}
			if t0.IsZero() {
				continue
			}
			for len(marks) > 0 && n >= marks[0] {
				res.milestones = append(res.milestones, now.Sub(t0))
				marks = marks[1:]
			}
			if n >= int64(rows) && !writing {
				res.total = now.Sub(t0)
				per, self, _ := meter.stop()
				res.cpu, res.selfCPU = per, self
				if n != int64(rows) {
					return res, fmt.Errorf("target holds %d rows, want %d", n, rows)
				}
				return res, nil
			}
			if !src.alive() || !dst.alive() {
				return res, fmt.Errorf("an agent exited during the run\nsource:\n%s\ntarget:\n%s",
					src.logTail(10), dst.logTail(10))
			}
			if !writing && now.After(deadline) {
				return res, fmt.Errorf("target holds %d of %d rows %v after the last commit", n, rows, timeout)
			}
		}
	}
}

// legacyResult is the one-request-per-change run.
type legacyResult struct {
	rows       int
	total      time.Duration
	pollEvery  time.Duration
	post, wait []time.Duration // per row: the request, then the wait until applied
}

// legacy is the original's design over the same target agent: each change travels alone
// in its own signed batch (K_pair of a sender platform, docs/protocol.md section 7), one
// request at a time, and the next one is sent only once the change is applied (the agent
// applies each batch in its own transaction). Applied is seen by polling the target's
// table for the change's ulid every pollEvery. It stops after rows rows or maxTime.
func legacy(ctx context.Context, sender, dst *platform, syncID int64, table string, rows int,
	maxTime time.Duration) (legacyResult, error) {
	res := legacyResult{pollEvery: 250 * time.Microsecond}
	tdb, err := openReadOnly(dst.dbPath)
	if err != nil {
		return res, err
	}
	defer tdb.Close()
	exists, err := tdb.Prepare(`SELECT EXISTS (SELECT 1 FROM "` + table + `" WHERE ulid = ?)`)
	if err != nil {
		return res, err
	}
	defer exists.Close()

	key := protocol.PairKey(protocol.ControlKey(dst.token, syncToken), sender.id, dst.id)
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	url := dst.url() + protocol.DefaultWebhookPath
	var signer protocol.Signer
	start := time.Now()
	for i := range rows {
		if time.Since(start) > maxTime {
			break
		}
		p := makePost('L', i)
		now := time.Now().UTC()
		batch := protocol.Batch{
			BatchID:          protocol.NewULID(),
			SourcePlatformID: sender.id,
			SyncID:           syncID,
			Changes: []protocol.Change{{
				Seq: int64(i + 1), EventType: "created", Model: "posts",
				Key:  protocol.Key{Field: "ulid", Value: p.ulid},
				Data: p.data(int64(i + 1)), OriginPlatformID: sender.id,
				ChangedAt: now.Format("2006-01-02T15:04:05.000Z07:00"),
			}},
		}
		body, err := json.Marshal(batch)
		if err != nil {
			return res, err
		}
		t1 := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return res, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(protocol.HeaderPlatform, strconv.FormatInt(sender.id, 10))
		signer.SignData(batch.BatchID, body, key).Set(req.Header)
		resp, err := client.Do(req)
		if err != nil {
			return res, fmt.Errorf("legacy delivery %d: %w", i, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return res, fmt.Errorf("legacy delivery %d: %s %s", i, resp.Status, answer)
		}
		t2 := time.Now()
		deadline := t2.Add(30 * time.Second)
		for {
			var ok bool
			if err := exists.QueryRow(p.ulid).Scan(&ok); err != nil {
				return res, err
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("legacy change %d not applied within 30 s\n%s", i, dst.logTail(10))
			}
			time.Sleep(res.pollEvery)
		}
		res.post = append(res.post, t2.Sub(t1))
		res.wait = append(res.wait, time.Since(t2))
		res.rows++
	}
	res.total = time.Since(start)
	return res, nil
}

// latencyResult is the steady-rate run.
type latencyResult struct {
	rows          int
	p50, p99, max time.Duration
	pollEvery     time.Duration
	rate          float64 // achieved changes/s
	cpu           []time.Duration
	wall          time.Duration
	csv           string // per row: commit time since the start, latency
}

// latency writes perTick rows every tick in one small transaction each, for duration,
// records each row's commit time, and polls the target every pollEvery for new rows (by
// rowid), recording when each ulid is first seen.
func latency(ctx context.Context, src, dst *platform, perTick int, tick, duration time.Duration) (latencyResult, error) {
	res := latencyResult{pollEvery: 5 * time.Millisecond}
	sdb, err := openSQLite(src.dbPath)
	if err != nil {
		return res, err
	}
	defer sdb.Close()
	tdb, err := openReadOnly(dst.dbPath)
	if err != nil {
		return res, err
	}
	defer tdb.Close()
	var maxID int64
	if err := tdb.QueryRow(`SELECT COALESCE(MAX(rowid), 0) FROM posts`).Scan(&maxID); err != nil {
		return res, err
	}
	newRows, err := tdb.Prepare(`SELECT rowid, ulid FROM posts WHERE rowid > ? ORDER BY rowid`)
	if err != nil {
		return res, err
	}
	defer newRows.Close()

	total := int(duration/tick) * perTick
	committed := make([]time.Time, total)
	seen := make([]time.Time, total)
	meter := startCPU(src.pid(), dst.pid())
	wdone := make(chan error, 1)
	var written int
	go func() {
		w := newWriter(sdb, "posts", "")
		defer w.close()
		t := time.NewTicker(tick)
		defer t.Stop()
		for i := 0; i < total; i += perTick {
			<-t.C
			if err := w.tx(ctx, 'T', i, i+perTick); err != nil {
				wdone <- err
				return
			}
			now := time.Now()
			for j := i; j < i+perTick; j++ {
				committed[j] = now
			}
			written = i + perTick
		}
		wdone <- nil
	}()

	start := time.Now()
	got := 0
	writing := true
	var deadline time.Time
	for got < total {
		if writing {
			select {
			case err := <-wdone:
				if err != nil {
					return res, fmt.Errorf("latency writer: %w", err)
				}
				writing = false
				res.rate = float64(written) / time.Since(start).Seconds()
				deadline = time.Now().Add(30 * time.Second)
			default:
			}
		} else if time.Now().After(deadline) {
			return res, fmt.Errorf("latency: %d of %d rows arrived within 30 s of the last commit", got, total)
		}
		rs, err := newRows.Query(maxID)
		if err != nil {
			return res, err
		}
		now := time.Now()
		for rs.Next() {
			var id int64
			var u string
			if err := rs.Scan(&id, &u); err != nil {
				rs.Close()
				return res, err
			}
			maxID = id
			if len(u) == 26 && u[3] == 'T' {
				if i, err := strconv.Atoi(u[4:]); err == nil && i < total && seen[i].IsZero() {
					seen[i] = now
					got++
				}
			}
		}
		if err := rs.Close(); err != nil {
			return res, err
		}
		time.Sleep(res.pollEvery)
	}
	if writing {
		if err := <-wdone; err != nil {
			return res, err
		}
		res.rate = float64(written) / time.Since(start).Seconds()
	}
	res.cpu, _, res.wall = meter.stop()
	lat := make([]time.Duration, 0, total)
	var csv strings.Builder
	csv.WriteString("commit_offset_ms,latency_ms\n")
	for i := range total {
		d := max(seen[i].Sub(committed[i]), 0) // seen before the writer read its clock: ~0
		lat = append(lat, d)
		fmt.Fprintf(&csv, "%.3f,%.3f\n", ms(committed[i].Sub(start)), ms(d))
	}
	res.csv = csv.String()
	slices.Sort(lat)
	res.rows = total
	res.p50 = lat[len(lat)/2]
	res.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	res.max = lat[len(lat)-1]
	return res, nil
}

// verify checks that the target holds every row of the sustained run exactly once, and
// the rows of the other stages, and compares a sample of rows column by column with the
// source.
func verify(src, dst *platform, rows, latencyRows, legacyRows int) (string, error) {
	sdb, err := openReadOnly(src.dbPath)
	if err != nil {
		return "", err
	}
	defer sdb.Close()
	tdb, err := openReadOnly(dst.dbPath)
	if err != nil {
		return "", err
	}
	defer tdb.Close()
	var all, e2eRows, distinct int
	if err := tdb.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT ulid) FROM posts WHERE ulid BETWEEN ? AND ?`,
		ulidOf('E', 0), ulidOf('E', rows-1)).Scan(&e2eRows, &distinct); err != nil {
		return "", err
	}
	if err := tdb.QueryRow(`SELECT COUNT(*) FROM posts`).Scan(&all); err != nil {
		return "", err
	}
	var legacyN int
	if err := tdb.QueryRow(`SELECT COUNT(DISTINCT ulid) FROM posts_legacy`).Scan(&legacyN); err != nil {
		return "", err
	}
	if distinct != rows || e2eRows != rows || all != rows+latencyRows || legacyN != legacyRows {
		return "", fmt.Errorf("rows lost or doubled: target posts has %d rows (%d of the sustained run, %d distinct; want %d and %d of the latency run), posts_legacy %d distinct (want %d)",
			all, e2eRows, distinct, rows, latencyRows, legacyN, legacyRows)
	}
	cols := "ulid, slug, title, body, views, published, created_at, updated_at"
	q := `SELECT ` + cols + ` FROM posts WHERE ulid = ?`
	step := max(1, rows/1000)
	compared := 0
	for i := 0; i < rows; i += step {
		u := ulidOf('E', i)
		a, err := rowValues(sdb, q, u)
		if err != nil {
			return "", fmt.Errorf("source row %s: %w", u, err)
		}
		b, err := rowValues(tdb, q, u)
		if err != nil {
			return "", fmt.Errorf("target row %s: %w", u, err)
		}
		if !slices.Equal(a, b) {
			return "", fmt.Errorf("row %s differs:\n source %q\n target %q", u, a, b)
		}
		compared++
	}
	return fmt.Sprintf("OK: %d distinct ulids of the sustained run on the target, none twice (+%d latency rows, +%d legacy rows); %d sampled rows equal on every column but the local id",
		distinct, latencyRows, legacyRows, compared), nil
}

// rowValues reads one row as text, datetimes in one form (the agent writes a DATETIME
// column in its canonical form, which may differ from the application's text).
func rowValues(db *sql.DB, q, key string) ([]string, error) {
	rs, err := db.Query(q, key)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	if !rs.Next() {
		if err := rs.Err(); err != nil {
			return nil, err
		}
		return nil, sql.ErrNoRows
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rs.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := make([]string, len(cols))
	for i, v := range vals {
		switch x := v.(type) {
		case time.Time:
			out[i] = x.UTC().Format(time.RFC3339Nano)
		case []byte:
			out[i] = normTime(string(x))
		case string:
			out[i] = normTime(x)
		case bool:
			out[i] = map[bool]string{false: "0", true: "1"}[x]
		default:
			out[i] = fmt.Sprint(x)
		}
	}
	return out, nil
}

// normTime renders a datetime text in RFC 3339 (UTC) and leaves anything else alone.
func normTime(s string) string {
	for _, layout := range []string{laravelTime, "2006-01-02 15:04:05.999999999", time.RFC3339Nano,
		"2006-01-02 15:04:05.999999999-07:00", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Format(time.RFC3339Nano)
		}
	}
	return s
}
