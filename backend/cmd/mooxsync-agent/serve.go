package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/agent/appdb"
	"github.com/mooxsync/mooxsync/backend/agent/source"
	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/deliver"
	synchandler "github.com/mooxsync/mooxsync/backend/handler"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// readTimeout bounds how long reading one request may take: a body at the 32 MiB limit
// over a slow link, but not a connection held open forever.
const readTimeout = 5 * time.Minute

// shutdownTimeout bounds how long serve waits for requests in flight on SIGTERM.
const shutdownTimeout = 30 * time.Second

const serveUsage = `Usage: mooxsync-agent serve [flags]

Serves the agent: the control plane under /api/ and the data-delivery webhook. SYNC_TOKEN
must be set in the environment (at least 32 characters).

HTTPS is the default: the agent serves its own self-signed certificate (ECDSA P-256),
generated in DIR/tls on first start, whose fingerprint the control center pins at
enrollment; or the one given with --tls-cert and --tls-key. Plain HTTP needs --plain-http
and a loopback listen address (127.0.0.1:7443, [::1]:7443, localhost:7443), or
--insecure-http on any address, for an agent behind a proxy that terminates TLS.

On SIGTERM or SIGINT the agent stops accepting requests, stops delivering (a batch in
flight is sent again, under the same id, after the next start), finishes the batch it is
applying, and exits 0.

Flags:
`

func serveCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	s := newSettings("serve", stdout, stderr, serveUsage)
	cfg, err := s.parse(args, getenv)
	if err != nil {
		return usageError(stderr, err)
	}
	token := getenv(agent.EnvSyncToken)
	if token == "" {
		return usageError(stderr, errors.New("SYNC_TOKEN is not set: export the fleet's sync token from the "+
			"control center (at least 32 characters) before starting the agent"))
	}
	if err := protocol.CheckToken(token); err != nil {
		return usageError(stderr, fmt.Errorf("SYNC_TOKEN is %d characters long; it must be at least %d: use the "+
			"sync token the control center generated (base64url of 32 random bytes)", len(token), protocol.MinTokenLength))
	}
	if err := cfg.Validate(); err != nil {
		return usageError(stderr, err)
	}
	level, _ := agent.ParseLogLevel(cfg.LogLevel)
	handler := slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	log := slog.New(handler)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, token, log, handler); err != nil {
		log.Error("agent stopped", "err", err)
		return exitRuntime
	}
	return exitOK
}

// deliverOptions turns the deliver section of the configuration into the Manager's
// tuning; a linger of 0 means none.
func deliverOptions(c agent.DeliverConfig) deliver.Options {
	linger := time.Duration(c.Linger)
	if linger == 0 {
		linger = -1
	}
	return deliver.Options{BatchSize: c.BatchSize, Linger: linger, BackoffBase: time.Duration(c.Backoff),
		BackoffMax: time.Duration(c.MaxBackoff)}
}

// serve runs the agent until ctx is cancelled (SIGTERM, SIGINT), then drains it.
func serve(ctx context.Context, cfg agent.Config, token string, log *slog.Logger, handler slog.Handler) error {
	if err := os.MkdirAll(cfg.State, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	var tlsConfig *tls.Config
	fingerprint := ""
	if cfg.PlainHTTP || cfg.InsecureHTTP {
		if !agent.IsLoopback(cfg.Listen) {
			log.Warn("serving plain HTTP on a non-loopback address (--insecure-http): requests and tokens travel unencrypted unless a proxy terminates TLS",
				"listen", cfg.Listen)
		}
	} else {
		certFile, keyFile := cfg.TLSCert, cfg.TLSKey
		if certFile == "" {
			var created bool
			var err error
			certFile, keyFile, created, err = agent.EnsureCertificate(cfg.State, agent.CertificateHosts(cfg.Hosts))
			if err != nil {
				return err
			}
			if created {
				log.Info("generated a self-signed certificate", "cert", certFile)
			}
		}
		cert, fp, err := agent.LoadCertificate(certFile, keyFile)
		if err != nil {
			return err
		}
		fingerprint = fp
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	// The transformers and sync handlers registered on this agent: the built-ins, plus
	// the transformers that read the application database (added once it is open). A Go
	// program embedding the agent registers its own here.
	transformers, handlers := transform.Default(), synchandler.Default()
	appCfg := appdb.Config{
		UniqueIdentifierFields: cfg.UniqueIdentifierFields,
		LocalIdentifierFields:  cfg.LocalIdentifierFields,
		Handlers:               handlers,
		SyncBindings:           cfg.SyncBindings,
	}
	if err := appCfg.ApplyConfig().Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}

	store, err := state.Open(ctx, cfg.State)
	if err != nil {
		return err
	}
	defer store.Close()
	app, err := appdb.Open(ctx, cfg.DB, appCfg)
	if err != nil {
		return err
	}
	defer app.Close()
	source.RegisterTransformers(transformers, app.SQLDB())
	if err := transform.ValidateBindings(transformers, cfg.TransformerBindings); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if len(cfg.ModelsWithPlatformRelations) > 0 {
		if err := capture.EnsureRelationsTable(ctx, app.SQLDB()); err != nil {
			return err
		}
	}

	shared, err := store.OpenShared(ctx)
	if err != nil {
		return err
	}
	defer shared.Close()
	src, err := source.Open(ctx, app.SQLDB(), shared, source.Options{
		Logger:                 log,
		ListenerDisabled:       !cfg.SyncEloquentListener.Enabled,
		UniqueIdentifierFields: cfg.UniqueIdentifierFields,
		Transformers:           transformers,
		TransformerBindings:    cfg.TransformerBindings,
		Deliver:                deliverOptions(cfg.Deliver),
	})
	if err != nil {
		return err
	}
	defer src.Stop()

	a, err := agent.New(ctx, agent.Options{
		SyncToken:       token,
		Store:           store,
		Applier:         app,
		Models:          app,
		Source:          src,
		Relations:       app,
		Transformers:    transformers,
		Handlers:        handlers,
		Logger:          log,
		WebhookPath:     cfg.WebhookPath,
		WebhookDisabled: !cfg.SyncWebhook.Enabled,
		BodyLimit:       cfg.BodyLimit,
		TLSFingerprint:  fingerprint,
		Retry:           cfg.RetryPolicy(),
		InboxRetention:  time.Duration(cfg.InboxRetention),
		BackupJob:       cfg.SyncBackupJob.Enabled,
		InitialLoad:     cfg.InitialLoad.Enabled,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       readTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelDebug),
	}
	a.Start()
	src.Start()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("agent serving", "version", agent.Version, "addr", ln.Addr().String(), "tls", tlsConfig != nil,
		"tls_fingerprint", fingerprint, "webhook_path", cfg.WebhookPath, "webhook_enabled", cfg.SyncWebhook.Enabled,
		"listener_enabled", cfg.SyncEloquentListener.Enabled, "backup_job_enabled", cfg.SyncBackupJob.Enabled,
		"state", cfg.State)

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: no new requests, finishing the batch in progress")
	case serveErr = <-served:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("shutdown did not drain every request", "err", err)
	}
	// Then the senders and the capture, then the apply workers (each finishes the batch it
	// is applying); the deferred closes of the databases come last.
	src.Stop()
	a.Stop()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	log.Info("agent stopped")
	return nil
}
