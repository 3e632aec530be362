package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// syncToken is the fleet's sync token in every test.
const syncToken = "e2e-sync-token-0123456789abcdefghijklmnopqrstuvwxyz"

// binary is the mooxsync-agent that TestMain builds.
var binary string

// TestMain builds the agent once into a temporary directory (with the race detector when
// MOOXSYNC_E2E_RACE=1: slower, so not by default).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mooxsync-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mooxsync-agent")
	args := []string{"build", "-o", binary}
	if os.Getenv("MOOXSYNC_E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/mooxsync/mooxsync/backend/cmd/mooxsync-agent")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build mooxsync-agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// fleetT is what the control center knows: platforms with their tokens, and syncs. push
// computes every agent's desired state with fleet.DesiredState and puts it with
// fleet.Client, as Sync Platforms does.
type fleetT struct {
	t         *testing.T
	revision  int64
	platforms []*platform
	syncs     []protocol.Sync
}

func newFleet(t *testing.T) *fleetT { return &fleetT{t: t} }

// platform is one platform: its application database, and its agent process when started.
type platform struct {
	f       *fleetT
	id      int64
	name    string
	db      *sqldb.DB // the test's own connection to the application database
	dsn     string    // the agent's
	state   string    // the agent's state directory
	logPath string
	addr    string
	token   string
	args    []string // extra serve flags
	env     []string // extra environment
	// config is written as the agent's config file (mooxsync-agent.json in its state
	// directory) before it starts, when set.
	config map[string]any
	proc   *proc
	client *fleet.Client
}

// add creates a platform whose application database is a fresh database of the dialect
// ("sqlite", "postgres" or "mysql"); its agent is not started.
func (f *fleetT) add(dialect string, args ...string) *platform {
	f.t.Helper()
	id := int64(len(f.platforms) + 1)
	p := &platform{f: f, id: id, name: fmt.Sprintf("p%d-%s", id, dialect), args: args,
		token: fmt.Sprintf("platform-token-%02d-0123456789abcdefghijklmnopqrstuvwxyz", id)}
	p.db, p.dsn = openAppDB(f.t, dialect)
	p.state = f.t.TempDir()
	p.logPath = filepath.Join(p.state, "agent.log")
	p.addr = freeAddr(f.t)
	client, err := fleet.NewClient(fleet.ClientOptions{URL: p.url(), SyncToken: syncToken, PlatformToken: p.token})
	if err != nil {
		f.t.Fatal(err)
	}
	p.client = client
	f.t.Cleanup(client.Close)
	f.platforms = append(f.platforms, p)
	return p
}

func (p *platform) url() string { return "http://" + p.addr }

func (p *platform) protocolPlatform() protocol.Platform {
	return protocol.Platform{ID: p.id, Name: p.name, Domain: p.name + ".example", IPAddress: nil,
		ShowInMenu: true, Order: p.id, AgentURL: p.url()}
}

// openAppDB opens a fresh application database of the dialect and returns the test's
// connection to it and the DSN for the agent.
func openAppDB(t *testing.T, dialect string) (*sqldb.DB, string) {
	t.Helper()
	switch dialect {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "app.db")
		db, err := sqldb.Open(context.Background(), "sqlite:"+path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db, "sqlite:" + path
	case "postgres":
		db := sqldbtest.MustOpenPostgres(t)
		u, err := url.Parse(envOr("MOOXSYNC_TEST_POSTGRES", sqldbtest.DefaultPostgres))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", db.Schema())
		u.RawQuery = q.Encode()
		return db, u.String()
	case "mysql":
		db := sqldbtest.MustOpenMySQL(t)
		cfg, err := mysql.ParseDSN(strings.TrimPrefix(envOr("MOOXSYNC_TEST_MYSQL", sqldbtest.DefaultMySQL), "mysql://"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.DBName = db.Schema()
		return db, "mysql://" + cfg.FormatDSN()
	}
	t.Fatalf("unknown dialect %q", dialect)
	return nil, ""
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// sync adds an enabled sync from one platform's model to another's (if_exists update, all
// fields); edit adjusts it. It takes effect at the next push.
func (f *fleetT) sync(id int64, from *platform, fromModel string, to *platform, toModel string,
	edit func(*protocol.Sync)) {
	s := protocol.Sync{ID: id, Status: true,
		Title:            fmt.Sprintf("%s.example (%s) to %s.example (%s)", from.name, fromModel, to.name, toModel),
		SourcePlatformID: from.id, SourceModel: fromModel, TargetPlatformID: to.id, TargetModel: toModel,
		IfExists: protocol.IfExistsUpdate, SyncAllFields: true, Interval: 60}
	if edit != nil {
		edit(&s)
	}
	f.syncs = append(f.syncs, s)
}

// editSync changes a sync in place (for the next push).
func (f *fleetT) editSync(id int64, edit func(*protocol.Sync)) {
	for i := range f.syncs {
		if f.syncs[i].ID == id {
			edit(&f.syncs[i])
			return
		}
	}
	f.t.Fatalf("no sync %d", id)
}

// removeSync drops a sync (for the next push).
func (f *fleetT) removeSync(id int64) {
	for i := range f.syncs {
		if f.syncs[i].ID == id {
			f.syncs = append(f.syncs[:i], f.syncs[i+1:]...)
			return
		}
	}
	f.t.Fatalf("no sync %d", id)
}

// push puts a new revision of the desired state to every running agent.
func (f *fleetT) push() {
	f.t.Helper()
	for name, err := range f.tryPush() {
		f.t.Fatalf("put state to %s: %v", name, err)
	}
}

// tryPush is push that returns the failures by platform name instead of failing the test;
// the revision is used up either way.
func (f *fleetT) tryPush() map[string]error {
	f.t.Helper()
	failed := map[string]error{}
	f.revision++
	snap := fleet.Fleet{Revision: f.revision, Syncs: f.syncs}
	tokens := map[int64]string{}
	for _, p := range f.platforms {
		snap.Platforms = append(snap.Platforms, fleet.FleetPlatform{Platform: p.protocolPlatform(),
			WebhookPath: protocol.DefaultWebhookPath, Enrolled: true})
		tokens[p.id] = p.token
	}
	for _, p := range f.platforms {
		if p.proc == nil {
			continue
		}
		st, err := fleet.DesiredState(snap, p.id, syncToken, tokens)
		if err != nil {
			f.t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		rev, err := p.client.PutState(ctx, st)
		cancel()
		if err == nil && rev != f.revision {
			err = fmt.Errorf("revision %d in force, want %d", rev, f.revision)
		}
		if err != nil {
			failed[p.name] = fmt.Errorf("%w\n%s", err, p.logTail(40))
		}
	}
	return failed
}

// startAll starts every agent that is not running and pushes the desired state.
func (f *fleetT) startAll() {
	f.t.Helper()
	for _, p := range f.platforms {
		if p.proc == nil {
			p.start()
		}
	}
	f.push()
}

// postsPair is the most common fleet: a source and a target platform of the given
// dialects with a posts table each, sync 1 between them (edit adjusts it), both agents
// running with the state pushed.
func postsPair(t *testing.T, from, to string, edit func(*protocol.Sync)) (f *fleetT, src, dst *platform) {
	t.Helper()
	f = newFleet(t)
	src, dst = f.add(from), f.add(to)
	src.createPosts("posts")
	dst.createPosts("posts")
	f.sync(1, src, "posts", dst, "posts", edit)
	f.startAll()
	return f, src, dst
}

// proc is a running agent process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// start starts the platform's agent, waits for it to answer and enrolls it (again: the
// same platform and token are accepted).
func (p *platform) start() {
	t := p.f.t
	t.Helper()
	if p.proc != nil {
		t.Fatalf("%s is running", p.name)
	}
	if p.config != nil {
		b, err := json.Marshal(p.config)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p.state, "mooxsync-agent.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--listen", p.addr, "--db", p.dsn, "--state", p.state, "--plain-http",
		"--apply-backoff", "50ms", "--apply-max-backoff", "1s", "--deliver-max-backoff", "1s"}, p.args...)
	cmd := exec.Command(binary, args...)
	// The agents run without the initial load unless a test asks for it (p.env comes last and
	// wins): most tests count exactly what capture sends, and an initial load running beside
	// live changes sends some rows twice (harmless to the data, not to those counts).
	cmd.Env = append(append(baseEnv(), "SYNC_TOKEN="+syncToken, "SYNC_INITIAL_LOAD_ENABLED=false"), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	pr := &proc{cmd: cmd, done: make(chan struct{}), log: logf}
	go func() {
		_ = cmd.Wait()
		close(pr.done)
	}()
	p.proc = pr
	t.Cleanup(func() {
		if p.proc == pr {
			if code := p.stop(syscall.SIGTERM); code != 0 {
				t.Errorf("%s exited with %d on SIGTERM", p.name, code)
			}
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", p.name, p.logTail(60))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.client.Health(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-pr.done:
			t.Fatalf("%s exited at start: %v\n%s", p.name, cmd.ProcessState, p.logTail(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come up: %v\n%s", p.name, err, p.logTail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.client.Enroll(ctx, p.protocolPlatform()); err != nil {
		t.Fatalf("enroll %s: %v", p.name, err)
	}
}

// stop signals the agent and returns its exit code (-1 when killed by a signal).
func (p *platform) stop(sig syscall.Signal) int {
	t := p.f.t
	t.Helper()
	pr := p.proc
	if pr == nil {
		t.Fatalf("%s is not running", p.name)
	}
	p.proc = nil
	defer pr.log.Close()
	_ = pr.cmd.Process.Signal(sig)
	select {
	case <-pr.done:
	case <-time.After(30 * time.Second):
		_ = pr.cmd.Process.Kill()
		<-pr.done
		t.Errorf("%s did not stop within 30 s of %v", p.name, sig)
	}
	return pr.cmd.ProcessState.ExitCode()
}

// kill9 kills the agent with SIGKILL, as a crash would.
func (p *platform) kill9() { p.stop(syscall.SIGKILL) }

// logTail returns the last n lines of the agent's log.
func (p *platform) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logErrors returns the ERROR lines of the agent's log.
func (p *platform) logErrors() []string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte(`"level":"ERROR"`)) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// status returns the agent's /api/status.
func (p *platform) status() protocol.Status {
	t := p.f.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := p.client.Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", p.name, err)
	}
	return st
}

// syncStatus returns the status entry of a sync in a role.
func (p *platform) syncStatus(id int64, role string) protocol.SyncStatus {
	p.f.t.Helper()
	st := p.status()
	for _, s := range st.Syncs {
		if s.ID == id && s.Role == role {
			return s
		}
	}
	p.f.t.Fatalf("%s reports no %s status of sync %d: %+v", p.name, role, id, st.Syncs)
	return protocol.SyncStatus{}
}

// baseEnv is the environment without any of the agent's variables.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SYNC_") || strings.HasPrefix(kv, "MOOXSYNC_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitFor polls cond until it holds or timeout passes; cond returns a description of
// what it saw, shown on failure.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 20 * time.Millisecond
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last seen: %s", what, timeout, seen)
		}
		time.Sleep(wait)
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// parallelSlots bounds the tests that run agents at the same time, whatever -parallel
// says: each test runs two or three agent processes and their databases.
var parallelSlots = make(chan struct{}, 2)

// limitParallel takes a slot until the test ends.
func limitParallel(t *testing.T) {
	parallelSlots <- struct{}{}
	t.Cleanup(func() { <-parallelSlots })
}

// statusText is a short form of a sync status for failure messages.
func statusText(s protocol.SyncStatus) string {
	msg := ""
	if s.ErrorMessage != nil {
		msg = " error=" + *s.ErrorMessage
	}
	return fmt.Sprintf("{%d %s pending=%d sent=%d applied=%d failed=%d lag=%dms has_errors=%v%s}",
		s.ID, s.Role, s.Pending, s.Sent, s.Applied, s.Failed, s.LagMS, s.HasErrors, msg)
}
