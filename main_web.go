//go:build web

// Command mooxsync, built with the tag web, is the control center's web mode: the same
// services and frontend as the desktop app, served over HTTP on loopback to a browser that
// opens the printed URL with its session token. For browser tests, and for admins on a
// machine without a desktop.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mooxsync/mooxsync/app"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

const webUsage = `Usage: mooxsync-web [flags]

Serves the mooxsync control center to a browser: it prints the URL to open, with a session
token that every call must carry, and serves until SIGINT or SIGTERM. It listens on
loopback only; from another machine, use an SSH tunnel (ssh -L 8080:127.0.0.1:8080 host,
with --listen 127.0.0.1:8080).

Tokens live in the OS keyring (Secret Service). Without one (a server without a desktop
session), tokens cannot be stored unless --secrets-file names a file to keep them in clear
text, readable by its owner only (mode 0600).

Exit codes: 0 success, 1 runtime failure, 2 usage error.

Flags:
`

type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }
func (h *hostList) Set(v string) error {
	*h = append(*h, v)
	return nil
}

func main() {
	os.Exit(runWeb(os.Args[1:], os.Stdout, os.Stderr))
}

func runWeb(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("mooxsync-web", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(stderr, webUsage)
		fset.PrintDefaults()
	}
	listen := fset.String("listen", "127.0.0.1:0", "address to serve on, HOST:PORT (port 0 picks a free one); loopback only unless --allow-remote")
	allowRemote := fset.Bool("allow-remote", false, "allow a --listen address that is not loopback (plain HTTP: the session token travels in clear)")
	var hosts hostList
	fset.Var(&hosts, "allowed-host", "further HOST:PORT accepted as the Host of requests, with --allow-remote; repeatable")
	catalogPath := fset.String("catalog", "", "catalog file (default: the user's config directory, mooxsync/catalog.db)")
	settingsPath := fset.String("settings", "", "settings file (default: the user's config directory, mooxsync/settings.json)")
	secretsFile := fset.String("secrets-file", "", "opt in to keeping tokens in this file (clear text, mode 0600) instead of the OS keyring")
	pollInterval := fset.Duration("poll-interval", 0, "time between two polls of the agents (default 15s)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "mooxsync-web: unexpected argument %q\n", fset.Arg(0))
		return exitUsage
	}
	if err := app.CheckListenAddr(*listen, *allowRemote); err != nil {
		fmt.Fprintf(stderr, "mooxsync-web: %v\n", err)
		return exitUsage
	}
	if len(hosts) > 0 && !*allowRemote {
		fmt.Fprintln(stderr, "mooxsync-web: --allowed-host needs --allow-remote")
		return exitUsage
	}

	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var (
		store   secrets.Store
		backend = app.BackendKeyring
	)
	if *secretsFile != "" {
		store, backend = secrets.NewFile(*secretsFile), app.BackendFile
		log.Warn("tokens are kept in clear text in a file (mode 0600), as --secrets-file asks", "file", *secretsFile)
	} else {
		kr := secrets.NewKeyring()
		if _, err := kr.Get(ctx, secrets.SyncTokenKey); errors.Is(err, secrets.ErrUnavailable) {
			log.Warn("the OS keyring is unavailable: tokens can be neither read nor stored "+
				"(pass --secrets-file PATH to keep them in a private file instead)", "err", err)
		}
		store = kr
	}

	events := app.NewBroadcaster()
	interval := *pollInterval
	a, err := app.New(app.Options{
		CatalogPath: *catalogPath, SettingsPath: *settingsPath,
		Secrets: store, SecretsBackend: backend, SecretsFile: *secretsFile,
		Emitter: events, Logger: log, LogLevel: level, TrustOnFirstUse: true, PollInterval: interval,
	})
	if err != nil {
		fmt.Fprintf(stderr, "mooxsync-web: %v\n", err)
		return exitRuntime
	}
	defer a.Shutdown(context.Background())

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "mooxsync-web: %v\n", err)
		return exitRuntime
	}
	addr := ln.Addr().String()
	session, err := app.NewSessionToken()
	if err != nil {
		_ = ln.Close()
		fmt.Fprintf(stderr, "mooxsync-web: %v\n", err)
		return exitRuntime
	}
	dist, err := fs.Sub(assets, "frontend/dist")
	if err != nil {
		_ = ln.Close()
		fmt.Fprintf(stderr, "mooxsync-web: %v\n", err)
		return exitRuntime
	}
	handler, err := app.NewWebServer(a, app.WebOptions{
		Addr: addr, AllowedHosts: hosts, Session: session, Assets: dist, Events: events, Logger: log,
	})
	if err != nil {
		_ = ln.Close()
		fmt.Fprintf(stderr, "mooxsync-web: %v\n", err)
		return exitRuntime
	}
	a.Startup(ctx)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	// The URL alone on standard output, for scripts; it holds the session token, so it
	// never goes to the log.
	fmt.Fprintf(stdout, "http://%s/?%s=%s\n", addr, app.SessionParam, session)
	log.Info("mooxsync web mode: open the URL printed on standard output", "listen", addr)

	code := exitOK
	select {
	case <-ctx.Done():
	case err := <-served:
		log.Error("serve", "err", err)
		code = exitRuntime
	}
	events.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shut down the server", "err", err)
	}
	return code
}
