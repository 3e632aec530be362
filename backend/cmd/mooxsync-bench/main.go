// Command mooxsync-bench is the end-to-end benchmark of make bench (issue 4): two agents as
// real processes on loopback, SQLite at both ends, a Laravel-like posts table. It measures
// the sustained rate from the source's commit to the target's apply against the target's
// own upsert rate (the limit) and against the original's one-request-per-change design,
// the commit-to-applied latency at a steady 1000 changes/s, and the agents' peak memory.
// It prints a table and, as its last line, one JSON object. A missed target is reported,
// not failed: the exit code is non-zero only for a real error (rows lost, an agent down).
package main

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

const usage = `Usage: mooxsync-bench [flags]

End-to-end benchmark of mooxsync (make bench): a source and a target agent as processes on
loopback with plain HTTP, SQLite application databases at both ends. Prints a table and, as
the last line, a JSON object with e2e_rows_per_s, raw_upsert_rows_per_s, legacy_rows_per_s,
e2e_vs_raw, e2e_vs_legacy, latency_p50_ms, latency_p99_ms and agent_peak_rss_mb.

Flags:
`

type options struct {
	rows       int
	agent      string
	keep       bool
	legacyRows int
	legacyMax  time.Duration
	latencyFor time.Duration
	timeout    time.Duration
	perf       bool
	logLevel   string
}

func main() {
	var o options
	fs := flag.NewFlagSet("mooxsync-bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.rows, "rows", 200000, "rows of the sustained run (and of the raw upsert baseline)")
	fs.StringVar(&o.agent, "agent", "bin/mooxsync-agent", "the mooxsync-agent binary")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (databases, agent logs and states)")
	fs.IntVar(&o.legacyRows, "legacy-rows", 3000, "changes sent one request each in the legacy run")
	fs.DurationVar(&o.legacyMax, "legacy-max", 30*time.Second, "stop the legacy run after this long (it is a rate)")
	fs.DurationVar(&o.latencyFor, "latency-duration", 15*time.Second, "length of the steady 1000 changes/s run")
	fs.DurationVar(&o.timeout, "timeout", 120*time.Second, "give up when the target has not caught up this long after the last commit")
	fs.BoolVar(&o.perf, "perf", false, "record both agents with perf during the sustained run and print their top symbols (implies --keep)")
	fs.StringVar(&o.logLevel, "agent-log-level", "info", "the agents' --log-level (debug adds the capture rounds' timings to their logs)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if o.rows < 1000 || o.legacyRows < 1 {
		fmt.Fprintln(os.Stderr, "mooxsync-bench: --rows must be at least 1000 and --legacy-rows at least 1")
		os.Exit(2)
	}
	if o.perf {
		o.keep = true
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mooxsync-bench: FAILED:", err)
		os.Exit(1)
	}
}

// result is the last line.
type result struct {
	E2E         float64 `json:"e2e_rows_per_s"`
	Raw         float64 `json:"raw_upsert_rows_per_s"`
	Legacy      float64 `json:"legacy_rows_per_s"`
	E2EVsRaw    float64 `json:"e2e_vs_raw"`
	E2EVsLegacy float64 `json:"e2e_vs_legacy"`
	P50         float64 `json:"latency_p50_ms"`
	P99         float64 `json:"latency_p99_ms"`
	PeakRSS     float64 `json:"agent_peak_rss_mb"`
}

const perTx = 1000

func run(o options) (err error) {
	ctx := context.Background()
	bin, err := filepath.Abs(o.agent)
	if err != nil {
		return err
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return fmt.Errorf("agent binary %s not found (make agent)", o.agent)
	}
	dir, err := os.MkdirTemp("", "mooxsync-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Printf("temporary directory (kept): %s\n", dir)
	}
	defer func() {
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "mooxsync-bench: databases and agent logs kept in %s\n", dir)
		case !o.keep:
			os.RemoveAll(dir)
		}
	}()
	out := os.Stdout
	step := func(format string, args ...any) {
		fmt.Fprintf(out, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}

	loadStart := loadAverage()

	// 1. The limit: the target's own upsert rate.
	step("raw upsert: %d rows, %d per transaction, plain database/sql on a fresh SQLite file", o.rows, perTx)
	rawDur, err := rawUpsert(ctx, dir, o.rows, perTx, "raw.db")
	if err != nil {
		return err
	}
	rawRate := float64(o.rows) / rawDur.Seconds()
	rawFirst := rawDur

	// 2. The fleet: source (1) and target (2) agents; platform 3 is the legacy sender,
	// a platform without an agent that delivers to the target by hand.
	src, err := newPlatform(dir, 1, "source")
	if err != nil {
		return err
	}
	dst, err := newPlatform(dir, 2, "target")
	if err != nil {
		return err
	}
	old, err := newPlatform(dir, 3, "legacy")
	if err != nil {
		return err
	}
	if err := createPosts(src.dbPath, "posts"); err != nil {
		return err
	}
	if err := createPosts(dst.dbPath, "posts", "posts_legacy"); err != nil {
		return err
	}
	defer src.stop()
	defer dst.stop()
	step("starting agents %s (source %s, target %s)", o.agent, src.addr, dst.addr)
	if err := src.start(bin, o.logLevel); err != nil {
		return err
	}
	if err := dst.start(bin, o.logLevel); err != nil {
		return err
	}
	syncs := []protocol.Sync{
		{ID: 1, Status: true, Title: "source.example (posts) to target.example (posts)",
			SourcePlatformID: 1, SourceModel: "posts", TargetPlatformID: 2, TargetModel: "posts",
			IfExists: protocol.IfExistsUpdate, SyncAllFields: true, Interval: 60},
		{ID: 2, Status: true, Title: "legacy.example (posts) to target.example (posts_legacy)",
			SourcePlatformID: 3, SourceModel: "posts", TargetPlatformID: 2, TargetModel: "posts_legacy",
			IfExists: protocol.IfExistsUpdate, SyncAllFields: true, Interval: 60},
	}
	if err := push(1, []*platform{src, dst, old}, syncs); err != nil {
		return err
	}
	if err := waitTriggers(src.dbPath, "posts", 30*time.Second); err != nil {
		return err
	}

	// 3. The original's design: one request and one transaction per change.
	step("legacy: up to %d changes, one signed single-change batch per request, each awaited until applied", o.legacyRows)
	leg, err := legacy(ctx, old, dst, 2, "posts_legacy", o.legacyRows, o.legacyMax)
	if err != nil {
		return err
	}
	legRate := float64(leg.rows) / leg.total.Seconds()

	// 4. The sustained run.
	var recs []*perfRecording
	if o.perf {
		for _, p := range []*platform{src, dst} {
			r, err := startPerf(dir, p)
			if err != nil {
				return err
			}
			recs = append(recs, r)
		}
	}
	step("e2e: %d rows into the source in transactions of %d, until the target holds them all", o.rows, perTx)
	e, err := e2e(ctx, src, dst, o.rows, perTx, o.timeout)
	for _, r := range recs {
		r.stop()
	}
	if err != nil {
		return err
	}
	e2eRate := float64(o.rows) / e.total.Seconds()

	// 5. Latency at a steady 1000 changes/s, the backlog drained.
	step("latency: 10 rows every 10 ms (1000 changes/s) for %v", o.latencyFor)
	lat, err := latency(ctx, src, dst, 10, 10*time.Millisecond, o.latencyFor)
	if err != nil {
		return err
	}

	if o.keep {
		if err := os.WriteFile(filepath.Join(dir, "latency.csv"), []byte(lat.csv), 0o644); err != nil {
			return err
		}
	}

	// 6. Memory, correctness, logs.
	var peakKB int64
	var rss [2]procStat
	for i, p := range []*platform{src, dst} {
		s, err := readProc(p.pid())
		if err != nil {
			return fmt.Errorf("read /proc of %s agent: %w", p.name, err)
		}
		rss[i] = s
		peakKB = max(peakKB, s.hwmKB)
	}
	check, err := verify(src, dst, o.rows, lat.rows, leg.rows)
	if err != nil {
		return err
	}
	var logNotes []string
	for _, p := range []*platform{src, dst} {
		if n, first := p.logErrors(); n > 0 {
			logNotes = append(logNotes, fmt.Sprintf("%s agent logged %d errors, first: %s", p.name, n, strings.Join(first, " | ")))
		}
	}

	// The limit once more, now that the agents are stopped: the best of the two is the
	// limit (the machine may have been busier during one of them).
	src.stop()
	dst.stop()
	step("raw upsert again: %d rows", o.rows)
	rawDur2, err := rawUpsert(ctx, dir, o.rows, perTx, "raw2.db")
	if err != nil {
		return err
	}
	rawDur = min(rawDur, rawDur2)
	rawRate = float64(o.rows) / rawDur.Seconds()

	// 7. The source application's own commit rate with the capture triggers: no pipeline
	// can carry more than the application commits.
	ceilRows := min(o.rows, 50000)
	step("source commit rate with the capture triggers: %d rows into a fresh file", ceilRows)
	ceilDur, err := commitRate(ctx, dir, src.dbPath, ceilRows, perTx)
	if err != nil {
		return err
	}
	ceilRate := float64(ceilRows) / ceilDur.Seconds()
	step("done")

	r := result{
		E2E: round(e2eRate, 0), Raw: round(rawRate, 0), Legacy: round(legRate, 1),
		E2EVsRaw: round(e2eRate/rawRate, 3), E2EVsLegacy: round(e2eRate/legRate, 1),
		P50: round(ms(lat.p50), 1), P99: round(ms(lat.p99), 1),
		PeakRSS: round(float64(peakKB)/1024, 1),
	}

	fmt.Fprintln(out)
	fmt.Fprintf(out, "mooxsync end-to-end benchmark: loopback, plain HTTP, SQLite at both ends, %d rows, %d-core machine\n",
		o.rows, numCPU())
	fmt.Fprintf(out, "agent %s (%s); load average at start %s\n", o.agent, agentBuild(bin), loadStart)
	fmt.Fprintln(out)
	tw := newTable(out, "metric", "value", "target", "")
	tw.row("raw upsert (the limit)", fmt.Sprintf("%.0f rows/s", rawRate), "", "")
	tw.row("e2e sustained", fmt.Sprintf("%.0f rows/s", e2eRate), "", "")
	tw.row("legacy (1 request + 1 tx per change)", fmt.Sprintf("%.1f rows/s", legRate), "", "")
	tw.row("e2e / raw", fmt.Sprintf("%.3f", e2eRate/rawRate), ">= 0.5", passMiss(e2eRate/rawRate >= 0.5))
	tw.row("e2e / legacy", fmt.Sprintf("%.1f", e2eRate/legRate), ">= 10", passMiss(e2eRate/legRate >= 10))
	tw.row("latency p50 (commit to applied)", fmt.Sprintf("%.1f ms", ms(lat.p50)), "", "")
	tw.row("latency p99 (commit to applied)", fmt.Sprintf("%.1f ms", ms(lat.p99)), "<= 250 ms", passMiss(ms(lat.p99) <= 250))
	tw.row("agent peak RSS (VmHWM, larger)", fmt.Sprintf("%.1f MB", float64(peakKB)/1024), "<= 100 MB", passMiss(float64(peakKB)/1024 <= 100))
	tw.flush()

	fmt.Fprintln(out)
	fmt.Fprintln(out, "details")
	dt := newTable(out, "", "")
	dt.row("raw upsert", fmt.Sprintf("best of two runs (before the agents start: %v, after they stop: %v) of %d rows, %d rows per tx in prepared INSERT … ON CONFLICT(ulid) DO UPDATE of %d rows, agent's SQLite settings (WAL, synchronous=NORMAL, busy_timeout, foreign_keys, BEGIN IMMEDIATE)",
		rawFirst.Round(time.Millisecond), rawDur2.Round(time.Millisecond), o.rows, perTx, rowsPerStatement))
	dt.row("e2e", fmt.Sprintf("first source commit to all %d rows seen on the target: %v (target COUNT(*) polled every %v, read-only connection, counting rows above the last rowid seen)",
		o.rows, e.total.Round(time.Millisecond), e.pollEvery))
	dt.row("e2e source writer", fmt.Sprintf("%d rows in %d-row transactions (%d-row INSERTs, capture triggers on) committed in %v: %.0f rows/s",
		o.rows, perTx, rowsPerStatement, e.writer.Round(time.Millisecond), float64(o.rows-perTx)/e.writer.Seconds()))
	if len(e.milestones) == 3 {
		dt.row("source commit ceiling", fmt.Sprintf("the application alone with the agent's capture triggers (copied into a fresh file, outbox not read), as raw: %d rows in %v, %.0f rows/s = %.2f of raw (e2e cannot exceed it)",
			ceilRows, ceilDur.Round(time.Millisecond), ceilRate, ceilRate/rawRate))
		dt.row("e2e progress on the target", fmt.Sprintf("25%% at %v, 50%% at %v, 75%% at %v, 100%% at %v",
			e.milestones[0].Round(time.Millisecond), e.milestones[1].Round(time.Millisecond),
			e.milestones[2].Round(time.Millisecond), e.total.Round(time.Millisecond)))
	}
	dt.row("e2e CPU, source agent", cpuText(e.cpu[0], e.total, o.rows))
	dt.row("e2e CPU, target agent", cpuText(e.cpu[1], e.total, o.rows))
	dt.row("e2e CPU, benchmark (writer, poller)", cpuText(e.selfCPU, e.total, o.rows))
	dt.row("legacy", fmt.Sprintf("%d changes in %v: each its own batch (K_pair of platform 3 -> 2, docs/protocol.md section 7) POSTed over a kept-alive connection, the next sent once the change is in the target table (polled every %v); request p50 %.2f ms, wait for apply p50 %.2f ms",
		leg.rows, leg.total.Round(time.Millisecond), leg.pollEvery, ms(median(leg.post)), ms(median(leg.wait))))
	dt.row("latency", fmt.Sprintf("%d rows, 10 per transaction every 10 ms (%.0f changes/s achieved), after the backlog drained; target polled every %v for new rowids (resolution ~%v plus the query): p50 %.1f ms, p99 %.1f ms, max %.1f ms",
		lat.rows, lat.rate, lat.pollEvery, lat.pollEvery, ms(lat.p50), ms(lat.p99), ms(lat.max)))
	dt.row("latency CPU", fmt.Sprintf("source agent %.0f%%, target agent %.0f%% of one core",
		100*lat.cpu[0].Seconds()/lat.wall.Seconds(), 100*lat.cpu[1].Seconds()/lat.wall.Seconds()))
	dt.row("agents' memory", fmt.Sprintf("source VmHWM %.1f MB (VmRSS now %.1f MB), target VmHWM %.1f MB (VmRSS now %.1f MB)",
		float64(rss[0].hwmKB)/1024, float64(rss[0].rssKB)/1024, float64(rss[1].hwmKB)/1024, float64(rss[1].rssKB)/1024))
	dt.row("correctness", check)
	for _, n := range logNotes {
		dt.row("agent logs", n)
	}
	dt.flush()
	for _, rec := range recs {
		rec.report(out)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, string(b))
	return nil
}

// waitTriggers waits until the source agent has installed its capture triggers on table:
// rows written before would not be captured.
func waitTriggers(path, table string, timeout time.Duration) error {
	db, err := openReadOnly(path)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		var n int
		err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?`, table).Scan(&n)
		if err == nil && n >= 3 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the source agent installed %d capture triggers on %s within %v (%v)", n, table, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agentBuild describes the agent binary from its embedded build information.
func agentBuild(bin string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "build info unreadable"
	}
	rev, modified := "", ""
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return info.GoVersion
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += " with uncommitted changes"
	}
	return "commit " + rev + ", " + info.GoVersion
}

// loadAverage is the 1, 5 and 15 minute load average: other work on the machine slows
// every figure down.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(v float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	if v >= 0 {
		return float64(int64(v*p+0.5)) / p
	}
	return float64(int64(v*p-0.5)) / p
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func cpuText(cpu, wall time.Duration, rows int) string {
	return fmt.Sprintf("%.2f s CPU (%.0f%% of one core over the run), %.1f µs/row",
		cpu.Seconds(), 100*cpu.Seconds()/wall.Seconds(), float64(cpu.Microseconds())/float64(rows))
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}

// table prints aligned columns.
type table struct {
	w    io.Writer
	rows [][]string
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{w: w}
	if strings.Join(header, "") != "" {
		t.rows = append(t.rows, header)
	}
	return t
}

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) flush() {
	var width []int
	for _, r := range t.rows {
		for i, c := range r {
			if i == len(r)-1 {
				continue
			}
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		b.WriteString("  ")
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))+2))
			}
		}
		fmt.Fprintln(t.w, strings.TrimRight(b.String(), " "))
	}
}

// perfRecording is perf record attached to one agent.
type perfRecording struct {
	p    *platform
	path string
	cmd  *exec.Cmd
}

func startPerf(dir string, p *platform) (*perfRecording, error) {
	path := filepath.Join(dir, p.name+".perf.data")
	// DWARF unwinding: SQLite's C frames have no frame pointers, and a Go-only call graph
	// would leave the time spent in them unattributed.
	cmd := exec.Command("perf", "record", "-F", "199", "--call-graph", "dwarf,16384", "-o", path,
		"-p", fmt.Sprint(p.pid()))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	time.Sleep(200 * time.Millisecond)
	return &perfRecording{p: p, path: path, cmd: cmd}, nil
}

func (r *perfRecording) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGINT)
	_ = r.cmd.Wait()
}

// report prints the agent's hottest symbols (self time) during the sustained run.
func (r *perfRecording) report(out io.Writer) {
	b, err := exec.Command("perf", "report", "-i", r.path, "--no-children", "--stdio", "-g", "none",
		"--percent-limit", "1", "--fields", "overhead,dso,sym").Output()
	fmt.Fprintf(out, "\nperf, %s agent during the sustained run (self time; %s):\n", r.p.name, r.path)
	if err != nil {
		fmt.Fprintf(out, "  perf report: %v\n", err)
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fmt.Fprintln(out, "  "+strings.TrimSpace(line))
	}
}
