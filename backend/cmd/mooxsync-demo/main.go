// Command mooxsync-demo runs the local demo fleet of `make run` (build/scripts/run.sh):
//
//	mooxsync-demo up [flags]             create the demo databases, register Shop and Blog in the
//	                                     catalog, start their agents; stop them on SIGINT/SIGTERM
//	mooxsync-demo keyring                exit 0 when the OS keyring can keep tokens, 3 when not
//	mooxsync-demo appdb FILE shop|blog   create a seeded demo application database
//	mooxsync-demo sql FILE STATEMENT     run SQL on a SQLite file; rows are printed as JSON
//
// Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 no usable keyring.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/demo"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// Exit codes.
const (
	exitOK        = 0
	exitRuntime   = 1
	exitUsage     = 2
	exitNoKeyring = 3
)

const usageText = `mooxsync-demo — the local demo fleet of "make run".

Usage:
  mooxsync-demo up [flags]             create the demo databases, register Shop and Blog in the
                                       catalog, start their agents; stop them on SIGINT/SIGTERM
  mooxsync-demo keyring                exit 0 when the OS keyring can keep tokens, 3 when not
  mooxsync-demo appdb FILE shop|blog   create a seeded demo application database (SQLite)
  mooxsync-demo sql FILE STATEMENT     run SQL on a SQLite file; rows are printed as JSON

Run "mooxsync-demo up --help" for its flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "up":
		return upCmd(args[1:], stdout, stderr)
	case "keyring":
		return keyringCmd(stderr)
	case "appdb":
		return appdbCmd(args[1:], stderr)
	case "sql":
		return sqlCmd(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	fmt.Fprintf(stderr, "mooxsync-demo: unknown command %q\n\n%s", args[0], usageText)
	return exitUsage
}

const upUsage = `Usage: mooxsync-demo up [flags]

Creates the demo's SQLite application databases (DIR/shop.db, DIR/blog.db) unless they exist,
registers the platforms Shop and Blog and the sync of the Shop's posts to the Blog's posts in
the control center's catalog unless they are there, generates the fleet's sync token and the
platforms' tokens when missing (in the OS keyring, or in --secrets-file), and starts the two
agents (plain HTTP on 127.0.0.1, state in DIR/shop and DIR/blog, logs in DIR/*/agent.log).
When both answer it writes --ready-file (if given) and serves until SIGINT or SIGTERM, then
stops the agents. If an agent exits on its own, the demo stops and exits 1.

Flags:
`

func upCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, upUsage); fs.PrintDefaults() }
	dir := fs.String("dir", ".demo", "demo directory: application databases and agent state")
	agentBin := fs.String("agent", "", "the mooxsync-agent binary (default: next to this one)")
	catalogPath := fs.String("catalog", "", "catalog file (default: the control center's, in the user's config directory)")
	secretsFile := fs.String("secrets-file", "", "keep tokens in this file (clear text, mode 0600) instead of the OS keyring")
	shopPort := fs.Int("shop-port", demo.DefaultShopPort, "port of the Shop's agent on 127.0.0.1")
	blogPort := fs.Int("blog-port", demo.DefaultBlogPort, "port of the Blog's agent on 127.0.0.1")
	readyFile := fs.String("ready-file", "", "file written once both agents answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mooxsync-demo up: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *shopPort < 1 || *shopPort > 65535 || *blogPort < 1 || *blogPort > 65535 || *shopPort == *blogPort {
		fmt.Fprintln(stderr, "mooxsync-demo up: --shop-port and --blog-port must be two different ports 1-65535")
		return exitUsage
	}
	if *agentBin == "" {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "mooxsync-demo up: %v (pass --agent)\n", err)
			return exitUsage
		}
		*agentBin = filepath.Join(filepath.Dir(self), "mooxsync-agent")
	}
	if _, err := os.Stat(*agentBin); err != nil {
		fmt.Fprintf(stderr, "mooxsync-demo up: the agent binary: %v (build it with make agent)\n", err)
		return exitUsage
	}
	if *catalogPath == "" {
		p, err := catalog.DefaultPath()
		if err != nil {
			fmt.Fprintf(stderr, "mooxsync-demo up: %v\n", err)
			return exitRuntime
		}
		*catalogPath = p
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "mooxsync-demo up: %v\n", err)
		return exitRuntime
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	agents, err := up(ctx, upOptions{
		dir: absDir, agentBin: *agentBin, catalogPath: *catalogPath, secretsFile: *secretsFile,
		sites: demo.Sites(*shopPort, *blogPort),
	}, stdout)
	defer func() {
		for _, a := range agents {
			if err := a.Stop(35 * time.Second); err != nil {
				fmt.Fprintf(stderr, "mooxsync-demo: %v\n", err)
			}
		}
	}()
	if err != nil {
		fmt.Fprintf(stderr, "mooxsync-demo: %v\n", err)
		return exitRuntime
	}
	if *readyFile != "" {
		if err := os.WriteFile(*readyFile, []byte("ready\n"), 0o600); err != nil {
			fmt.Fprintf(stderr, "mooxsync-demo: %v\n", err)
			return exitRuntime
		}
	}

	exited := make(chan *demo.Agent, len(agents))
	for _, a := range agents {
		go func() {
			<-a.Done()
			exited <- a
		}()
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "demo: stopping the agents")
		return exitOK
	case a := <-exited:
		fmt.Fprintf(stderr, "mooxsync-demo: the agent of %s exited (%v); its log: %s\n", a.Site.Name, a.Err(), a.Log)
		return exitRuntime
	}
}

type upOptions struct {
	dir, agentBin, catalogPath, secretsFile string
	sites                                   []demo.Site
}

// up prepares the demo and starts its agents; the caller stops those it returns, also on
// error.
func up(ctx context.Context, o upOptions, out io.Writer) ([]*demo.Agent, error) {
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return nil, err
	}
	for _, s := range o.sites {
		created, err := demo.CreateAppDB(ctx, s.DBPath(o.dir), s.Key)
		if err != nil {
			return nil, err
		}
		if created {
			fmt.Fprintf(out, "demo: created %s (users, posts)\n", s.DBPath(o.dir))
		}
	}

	var store secrets.Store
	where := "the OS keyring (service mooxsync)"
	if o.secretsFile != "" {
		store = secrets.NewFile(o.secretsFile)
		where = o.secretsFile + " (clear text, mode 0600)"
	} else {
		store = secrets.NewKeyring()
	}
	cat, err := catalog.Open(o.catalogPath)
	if err != nil {
		return nil, err
	}
	reg, err := demo.Register(ctx, cat, store, o.dir, o.sites)
	if cerr := cat.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, secrets.ErrUnavailable) {
			return nil, fmt.Errorf("%w\n(run the control center in web mode with --secrets-file, as make run does without a keyring)", err)
		}
		return nil, err
	}
	if reg.NewSyncToken {
		fmt.Fprintf(out, "demo: generated the fleet's sync token in %s\n", where)
	}
	for _, name := range reg.Created {
		fmt.Fprintf(out, "demo: registered the platform %s in %s\n", name, o.catalogPath)
	}
	if reg.SyncCreated {
		fmt.Fprintf(out, "demo: registered the sync %q\n", reg.Sync.Title)
	}
	for _, name := range reg.Reset {
		fmt.Fprintf(out, "demo: the agent of %s starts afresh (its old state belonged to another catalog, platform or token)\n", name)
	}

	var agents []*demo.Agent
	for _, s := range o.sites {
		a, err := demo.StartAgent(ctx, o.agentBin, o.dir, s, reg.SyncToken)
		if err != nil {
			return agents, err
		}
		agents = append(agents, a)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, a := range agents {
		if err := a.WaitHealthy(wctx); err != nil {
			return agents, err
		}
	}
	fmt.Fprintf(out, "demo: agents running (tokens in %s; catalog %s)\n", where, o.catalogPath)
	for i, a := range agents {
		p := reg.Platforms[i]
		fmt.Fprintf(out, "  %-5s %-24s app db %s  log %s\n", p.Name, a.Site.AgentURL(), a.Site.DBPath(o.dir), a.Log)
	}
	return agents, nil
}

// keyringCmd checks that the OS keyring answers: a missing sync token is fine, an
// unavailable keyring is not.
func keyringCmd(stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := secrets.NewKeyring().Get(ctx, secrets.SyncTokenKey)
	switch {
	case err == nil, errors.Is(err, secrets.ErrNotFound):
		return exitOK
	case errors.Is(err, secrets.ErrUnavailable):
		fmt.Fprintf(stderr, "%v\n", err)
		return exitNoKeyring
	}
	fmt.Fprintf(stderr, "mooxsync-demo keyring: %v\n", err)
	return exitRuntime
}

func appdbCmd(args []string, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: mooxsync-demo appdb FILE shop|blog")
		return exitUsage
	}
	created, err := demo.CreateAppDB(context.Background(), args[0], args[1])
	if err != nil {
		fmt.Fprintf(stderr, "mooxsync-demo: %v\n", err)
		return exitRuntime
	}
	if !created {
		fmt.Fprintf(stderr, "mooxsync-demo: %s exists; left as it is\n", args[0])
	}
	return exitOK
}

// sqlCmd runs one statement on a SQLite file. A statement that returns rows prints them
// as a JSON array of objects; any other prints {"rows_affected": n}.
func sqlCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: mooxsync-demo sql FILE STATEMENT")
		return exitUsage
	}
	if _, err := os.Stat(args[0]); err != nil {
		fmt.Fprintf(stderr, "mooxsync-demo sql: %v\n", err)
		return exitUsage
	}
	out, err := runSQL(context.Background(), args[0], args[1])
	if err != nil {
		fmt.Fprintf(stderr, "mooxsync-demo sql: %v\n", err)
		return exitRuntime
	}
	fmt.Fprintln(stdout, string(out))
	return exitOK
}

func runSQL(ctx context.Context, file, stmt string) ([]byte, error) {
	db, err := sql.Open("sqlite3", file+"?_busy_timeout=10000")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	head := strings.ToUpper(strings.TrimSpace(stmt))
	if !strings.HasPrefix(head, "SELECT") && !strings.HasPrefix(head, "WITH") && !strings.HasPrefix(head, "PRAGMA") &&
		!strings.Contains(head, "RETURNING") {
		res, err := db.ExecContext(ctx, stmt)
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]int64{"rows_affected": n})
	}
	rows, err := db.QueryContext(ctx, stmt)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			if b, ok := vals[i].([]byte); ok {
				vals[i] = string(b)
			}
			row[c] = vals[i]
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return json.Marshal(out)
}
