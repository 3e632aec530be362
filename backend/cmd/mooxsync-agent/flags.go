package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
)

// hostList is a repeatable --host flag.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

func (h *hostList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*h = append(*h, s)
		}
	}
	return nil
}

// settings are the flags shared by serve and init; each overrides the config file and the
// environment only when it is given.
type settings struct {
	fs     *flag.FlagSet
	stdout io.Writer
	// writesConfig is set for init, whose --config names the file to write, not to read.
	writesConfig     bool
	config           string
	listen           string
	db               string
	state            string
	tlsCert, tlsKey  string
	hosts            hostList
	plainHTTP        bool
	insecureHTTP     bool
	webhookPath      string
	logLevel         string
	bodyLimit        int64
	applyMaxAttempts int
	applyBackoff     time.Duration
	applyMaxBackoff  time.Duration
	inboxRetention   time.Duration
	deliverBatch     int
	deliverLinger    time.Duration
	deliverMaxBack   time.Duration
}

func newSettings(name string, stdout, stderr io.Writer, usage string) *settings {
	s := &settings{fs: flag.NewFlagSet(name, flag.ContinueOnError), stdout: stdout}
	fs := s.fs
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		printFlags(fs)
	}
	fs.StringVar(&s.config, "config", "", "config file (JSON; env MOOXSYNC_CONFIG; default DIR/"+agent.ConfigFileName+" of --state when it exists)")
	fs.StringVar(&s.listen, "listen", "", "address to serve on, HOST:PORT (env MOOXSYNC_LISTEN; default "+agent.DefaultListen+")")
	fs.StringVar(&s.db, "db", "", "application database DSN: sqlite:/path/app.db, postgres://…, mysql://… (env MOOXSYNC_DB)")
	fs.StringVar(&s.state, "state", "", "state directory: the agent's own SQLite state and certificate (env MOOXSYNC_STATE)")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "serve this certificate (PEM) instead of the agent's own (env MOOXSYNC_TLS_CERT)")
	fs.StringVar(&s.tlsKey, "tls-key", "", "key of --tls-cert (PEM) (env MOOXSYNC_TLS_KEY)")
	fs.Var(&s.hosts, "host", "DNS name or IP address for the generated certificate; repeatable (the hostname, localhost and loopback are always in)")
	fs.BoolVar(&s.plainHTTP, "plain-http", false, "serve plain HTTP instead of HTTPS; allowed on a loopback listen address only")
	fs.BoolVar(&s.insecureHTTP, "insecure-http", false, "serve plain HTTP on any address (only behind a proxy that terminates TLS)")
	fs.StringVar(&s.webhookPath, "webhook-path", "", "path of the data-delivery webhook (env SYNC_WEBHOOK_URL; default /sync-webhook)")
	fs.StringVar(&s.logLevel, "log-level", "", "debug, info, warn or error (env MOOXSYNC_LOG_LEVEL; default info)")
	fs.Int64Var(&s.bodyLimit, "body-limit", 0, "largest accepted request body in bytes (default 33554432, 32 MiB)")
	fs.IntVar(&s.applyMaxAttempts, "apply-max-attempts", 0, "attempts to apply a batch before it moves to the dead letters (default 5)")
	fs.DurationVar(&s.applyBackoff, "apply-backoff", 0, "wait after a failed apply, doubled after each further failure (default 1s)")
	fs.DurationVar(&s.applyMaxBackoff, "apply-max-backoff", 0, "longest wait between apply attempts (default 1m)")
	fs.DurationVar(&s.inboxRetention, "inbox-retention", 0, "how long an applied batch is kept, its id answered as a duplicate (default 168h, 7 days)")
	fs.IntVar(&s.deliverBatch, "deliver-batch-size", 0, "most changes in one delivered batch (default 1000)")
	fs.DurationVar(&s.deliverLinger, "deliver-linger", 0, "how long a batch that is not full waits for more changes; 0s for no wait (default 10ms)")
	fs.DurationVar(&s.deliverMaxBack, "deliver-max-backoff", 0, "longest wait between attempts to deliver a batch (default 30s)")
	return s
}

// errHelp is returned by parse for -h/--help, which is answered with exit code 0.
var errHelp = flag.ErrHelp

func wantsHelp(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool {
		return a == "-h" || a == "-help" || a == "--help" || a == "help"
	})
}

// parse parses args and builds the configuration: defaults, config file, environment, flags.
// For -h or --help it prints the usage on standard output and returns errHelp.
func (s *settings) parse(args []string, getenv func(string) string) (agent.Config, error) {
	if wantsHelp(args) {
		s.fs.SetOutput(s.stdout)
		s.fs.Usage()
		return agent.Config{}, errHelp
	}
	if err := s.fs.Parse(args); err != nil {
		return agent.Config{}, err
	}
	if s.fs.NArg() > 0 {
		return agent.Config{}, fmt.Errorf("unexpected argument %q", s.fs.Arg(0))
	}
	set := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg := agent.DefaultConfig()
	path := s.config
	if path == "" {
		path = getenv(agent.EnvConfig)
	}
	if s.writesConfig {
		path = ""
	} else if path == "" {
		dir := s.state
		if dir == "" {
			dir = getenv(agent.EnvState)
		}
		if dir != "" {
			if p := filepath.Join(dir, agent.ConfigFileName); fileExists(p) {
				path = p
			}
		}
	}
	if path != "" {
		var err error
		if cfg, err = agent.LoadConfig(path); err != nil {
			return agent.Config{}, err
		}
	}
	if err := cfg.ApplyEnv(getenv); err != nil {
		return agent.Config{}, err
	}
	if set["listen"] {
		cfg.Listen = s.listen
	}
	if set["db"] {
		cfg.DB = s.db
	}
	if set["state"] {
		cfg.State = s.state
	}
	if set["tls-cert"] {
		cfg.TLSCert = s.tlsCert
	}
	if set["tls-key"] {
		cfg.TLSKey = s.tlsKey
	}
	if set["host"] {
		cfg.Hosts = append(cfg.Hosts, s.hosts...)
	}
	if set["plain-http"] {
		cfg.PlainHTTP = s.plainHTTP
	}
	if set["insecure-http"] {
		cfg.InsecureHTTP = s.insecureHTTP
	}
	if set["webhook-path"] {
		p, err := agent.WebhookPathFromURL(s.webhookPath)
		if err != nil {
			return agent.Config{}, fmt.Errorf("--webhook-path: %w", err)
		}
		cfg.WebhookPath = p
	}
	if set["log-level"] {
		cfg.LogLevel = s.logLevel
	}
	if set["body-limit"] {
		cfg.BodyLimit = s.bodyLimit
	}
	if set["apply-max-attempts"] {
		cfg.Apply.MaxAttempts = s.applyMaxAttempts
	}
	if set["apply-backoff"] {
		cfg.Apply.Backoff = agent.Duration(s.applyBackoff)
	}
	if set["apply-max-backoff"] {
		cfg.Apply.MaxBackoff = agent.Duration(s.applyMaxBackoff)
	}
	if set["inbox-retention"] {
		cfg.InboxRetention = agent.Duration(s.inboxRetention)
	}
	if set["deliver-batch-size"] {
		cfg.Deliver.BatchSize = s.deliverBatch
	}
	if set["deliver-linger"] {
		cfg.Deliver.Linger = agent.Duration(s.deliverLinger)
	}
	if set["deliver-max-backoff"] {
		cfg.Deliver.MaxBackoff = agent.Duration(s.deliverMaxBack)
	}
	if cfg.State != "" {
		abs, err := filepath.Abs(cfg.State)
		if err != nil {
			return agent.Config{}, fmt.Errorf("state directory: %w", err)
		}
		cfg.State = abs
	}
	return cfg, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// usageError reports a usage or configuration error and returns its exit code.
func usageError(stderr io.Writer, err error) int {
	if errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "mooxsync-agent: %v\n", err)
	return exitUsage
}

// printFlags lists the flags GNU-style (--name), as the help texts write them.
func printFlags(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, text := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(fs.Output(), "%s\n      %s\n", line, text)
	})
}
