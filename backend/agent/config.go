package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mooxsync/mooxsync/backend/handler"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// DefaultListen is the address the agent listens on when none is configured.
const DefaultListen = ":7443"

// ConfigFileName is the config file that init writes into the state directory and serve
// reads from there when no --config is given.
const ConfigFileName = "mooxsync-agent.json"

// Config is the agent's configuration file (JSON). It mirrors Moox Sync's config/sync.php
// where that applies; the command line and the environment override it.
type Config struct {
	// Listen is the address to serve on (host:port).
	Listen string `json:"listen"`
	// DB is the application database's DSN.
	DB string `json:"db"`
	// State is the directory of the agent's own state (SQLite file, certificate).
	State string `json:"state"`
	// TLSCert and TLSKey name a certificate to serve; empty means the agent's own,
	// generated in the state directory on first start.
	TLSCert string `json:"tls_cert"`
	TLSKey  string `json:"tls_key"`
	// Hosts are extra DNS names and IP addresses for a generated certificate.
	Hosts []string `json:"hosts"`
	// PlainHTTP serves plain HTTP, allowed on loopback addresses only.
	PlainHTTP bool `json:"plain_http"`
	// InsecureHTTP serves plain HTTP on any address (behind a TLS-terminating proxy).
	InsecureHTTP bool `json:"insecure_http"`
	// WebhookPath is the data-plane path (Moox SYNC_WEBHOOK_URL).
	WebhookPath string `json:"webhook_path"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
	// BodyLimit is the largest accepted request body in bytes.
	BodyLimit int64 `json:"body_limit"`

	// UniqueIdentifierFields are the fields that identify a record across platforms, in the
	// order they are tried (Moox unique_identifier_fields).
	UniqueIdentifierFields []string `json:"unique_identifier_fields"`
	// LocalIdentifierFields are never copied between platforms (Moox local_identifier_fields).
	LocalIdentifierFields []string `json:"local_identifier_fields"`
	// ModelsWithPlatformRelations are the models with platform relations (model_platform).
	ModelsWithPlatformRelations []string `json:"models_with_platform_relations"`
	// TransformerBindings map a source model to a registered transformer (Moox
	// transformer_bindings): its name, or {"transformer": name, "config": {...}}. A sync
	// that names no transformer of its own uses its source model's binding.
	TransformerBindings map[string]transform.Binding `json:"transformer_bindings"`
	// SyncBindings map a target model to a registered sync handler (Moox sync_bindings):
	// its name, or {"handler": name, "config": {...}}.
	SyncBindings map[string]handler.Binding `json:"sync_bindings"`

	// SyncEloquentListener, SyncWebhook and SyncBackupJob are Moox's switches
	// (SYNC_LISTENER_ENABLED, SYNC_WEBHOOK_ENABLED, SYNC_BACKUP_JOB_ENABLED).
	SyncEloquentListener Switch `json:"sync_eloquent_listener"`
	SyncWebhook          Switch `json:"sync_webhook"`
	SyncBackupJob        Switch `json:"sync_backup_job"`
	// InitialLoad (SYNC_INITIAL_LOAD_ENABLED, default on): a new or re-enabled sync from
	// this platform first copies the rows its source already has (a reconciliation run).
	InitialLoad Switch `json:"initial_load"`

	// Apply bounds the retries of a batch that fails to apply.
	Apply ApplyConfig `json:"apply"`
	// InboxRetention is how long an applied batch is kept, its id answered as a duplicate,
	// before it is pruned.
	InboxRetention Duration `json:"inbox_retention"`
	// Deliver tunes the delivery of captured changes to the targets.
	Deliver DeliverConfig `json:"deliver"`
}

// DeliverConfig tunes delivery (PrepareSyncJob): batches of at most BatchSize changes,
// sent as soon as they are full or after Linger; a failed batch is retried after a random
// wait below Backoff doubled per attempt, at most MaxBackoff (full jitter).
type DeliverConfig struct {
	BatchSize  int      `json:"batch_size"`
	Linger     Duration `json:"linger"`
	Backoff    Duration `json:"backoff"`
	MaxBackoff Duration `json:"max_backoff"`
}

// Switch is an on/off setting, {"enabled": true} as in sync.php.
type Switch struct {
	Enabled bool `json:"enabled"`
}

// ApplyConfig is the retry policy of the apply workers.
type ApplyConfig struct {
	MaxAttempts int      `json:"max_attempts"`
	Backoff     Duration `json:"backoff"`
	MaxBackoff  Duration `json:"max_backoff"`
}

// Duration is a time.Duration written as a Go duration string ("1s", "250ms") in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"1s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DefaultConfig returns the configuration used where neither file, environment nor flags
// say otherwise.
func DefaultConfig() Config {
	return Config{
		Listen:                      DefaultListen,
		WebhookPath:                 protocol.DefaultWebhookPath,
		LogLevel:                    "info",
		BodyLimit:                   protocol.DefaultBodyLimit,
		UniqueIdentifierFields:      []string{"ulid", "uuid", "slug", "name", "title"},
		LocalIdentifierFields:       []string{"ID", "uuid", "ulid", "id"},
		ModelsWithPlatformRelations: []string{},
		TransformerBindings:         map[string]transform.Binding{},
		SyncBindings:                map[string]handler.Binding{},
		SyncEloquentListener:        Switch{Enabled: true},
		SyncWebhook:                 Switch{Enabled: true},
		SyncBackupJob:               Switch{Enabled: false},
		InitialLoad:                 Switch{Enabled: true},
		Apply: ApplyConfig{
			MaxAttempts: DefaultRetryPolicy.MaxAttempts,
			Backoff:     Duration(DefaultRetryPolicy.Backoff),
			MaxBackoff:  Duration(DefaultRetryPolicy.MaxBackoff),
		},
		InboxRetention: Duration(DefaultInboxRetention),
		Deliver: DeliverConfig{
			BatchSize:  DefaultDeliverBatchSize,
			Linger:     Duration(DefaultDeliverLinger),
			Backoff:    Duration(DefaultDeliverBackoff),
			MaxBackoff: Duration(DefaultDeliverMaxBackoff),
		},
	}
}

// Delivery defaults (the deliver package's own).
const (
	DefaultDeliverBatchSize  = 1000
	DefaultDeliverLinger     = 10 * time.Millisecond
	DefaultDeliverBackoff    = 100 * time.Millisecond
	DefaultDeliverMaxBackoff = 30 * time.Second
)

// LoadConfig reads a config file over the defaults. Unknown fields are refused, so that a
// misspelt setting does not pass silently.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// WriteConfig writes cfg as indented JSON, readable by its owner only.
func WriteConfig(path string, cfg Config) error {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// Environment variables read by ApplyEnv.
const (
	EnvSyncToken        = "SYNC_TOKEN"
	EnvListenerEnabled  = "SYNC_LISTENER_ENABLED"
	EnvWebhookEnabled   = "SYNC_WEBHOOK_ENABLED"
	EnvBackupJobEnabled = "SYNC_BACKUP_JOB_ENABLED"
	// EnvInitialLoadEnabled switches the initial load of new and re-enabled syncs.
	EnvInitialLoadEnabled = "SYNC_INITIAL_LOAD_ENABLED"
	EnvWebhookURL         = "SYNC_WEBHOOK_URL"
	EnvConfig             = "MOOXSYNC_CONFIG"
	EnvListen             = "MOOXSYNC_LISTEN"
	EnvDB                 = "MOOXSYNC_DB"
	EnvState              = "MOOXSYNC_STATE"
	EnvTLSCert            = "MOOXSYNC_TLS_CERT"
	EnvTLSKey             = "MOOXSYNC_TLS_KEY"
	EnvLogLevel           = "MOOXSYNC_LOG_LEVEL"
)

// ApplyEnv overrides cfg with the environment variables that are set (getenv returns ""
// for unset ones).
func (c *Config) ApplyEnv(getenv func(string) string) error {
	strs := []struct {
		name string
		dst  *string
	}{
		{EnvListen, &c.Listen}, {EnvDB, &c.DB}, {EnvState, &c.State}, {EnvTLSCert, &c.TLSCert},
		{EnvTLSKey, &c.TLSKey}, {EnvLogLevel, &c.LogLevel},
	}
	for _, s := range strs {
		if v := getenv(s.name); v != "" {
			*s.dst = v
		}
	}
	if v := getenv(EnvWebhookURL); v != "" {
		p, err := WebhookPathFromURL(v)
		if err != nil {
			return fmt.Errorf("%s: %w", EnvWebhookURL, err)
		}
		c.WebhookPath = p
	}
	bools := []struct {
		name string
		dst  *bool
	}{
		{EnvListenerEnabled, &c.SyncEloquentListener.Enabled},
		{EnvWebhookEnabled, &c.SyncWebhook.Enabled},
		{EnvBackupJobEnabled, &c.SyncBackupJob.Enabled},
		{EnvInitialLoadEnabled, &c.InitialLoad.Enabled},
	}
	for _, b := range bools {
		v := getenv(b.name)
		if v == "" {
			continue
		}
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s=%q: want true or false", b.name, v)
		}
		*b.dst = on
	}
	return nil
}

// WebhookPathFromURL accepts a path ("/sync-webhook", "sync-webhook") or a full URL and
// returns the path.
func WebhookPathFromURL(v string) (string, error) {
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil {
			return "", fmt.Errorf("not a URL: %w", err)
		}
		v = u.Path
	}
	if !strings.HasPrefix(v, "/") {
		v = "/" + v
	}
	return v, CheckWebhookPath(v)
}

// CheckWebhookPath checks that p can serve as the webhook path: an absolute, clean path of
// [A-Za-z0-9._~/-] that is not under /api/.
func CheckWebhookPath(p string) error {
	if len(p) < 2 || p[0] != '/' {
		return fmt.Errorf("webhook path %q must start with / and name something", p)
	}
	if p == "/api" || strings.HasPrefix(p, "/api/") {
		return fmt.Errorf("webhook path %q must not be under /api/", p)
	}
	for _, r := range p {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._~/-", r)
		if !ok {
			return fmt.Errorf("webhook path %q may hold only letters, digits and ._~/-", p)
		}
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("webhook path %q must be clean (no empty, . or .. segments)", p)
		}
	}
	return nil
}

// ParseLogLevel parses debug, info, warn or error.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// IsLoopback reports whether a listen address (host:port) binds only to loopback.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ErrInsecureTransport is returned by Validate when plain HTTP is asked for on an address
// that is not loopback without --insecure-http.
var ErrInsecureTransport = errors.New("refusing to serve plain HTTP on a non-loopback address")

// Validate checks a complete configuration for serve.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("no listen address: pass --listen HOST:PORT")
	case c.DB == "":
		return errors.New("no application database: pass --db DSN")
	case c.State == "":
		return errors.New("no state directory: pass --state DIR")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case c.BodyLimit <= 0:
		return errors.New("body_limit must be positive")
	case c.Apply.MaxAttempts <= 0:
		return errors.New("apply.max_attempts must be at least 1")
	case c.Apply.Backoff <= 0 || c.Apply.MaxBackoff < c.Apply.Backoff:
		return errors.New("apply.backoff must be positive and apply.max_backoff at least as long")
	case c.InboxRetention <= 0:
		return errors.New("inbox_retention must be positive")
	case c.Deliver.BatchSize <= 0:
		return errors.New("deliver.batch_size must be at least 1")
	case c.Deliver.Linger < 0:
		return errors.New("deliver.linger must not be negative")
	case c.Deliver.Backoff <= 0 || c.Deliver.MaxBackoff < c.Deliver.Backoff:
		return errors.New("deliver.backoff must be positive and deliver.max_backoff at least as long")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen address %q: %w", c.Listen, err)
	}
	if err := CheckWebhookPath(c.WebhookPath); err != nil {
		return err
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		return err
	}
	plain := c.PlainHTTP || c.InsecureHTTP
	if plain && c.TLSCert != "" {
		return errors.New("--tls-cert/--tls-key and plain HTTP exclude each other")
	}
	if c.PlainHTTP && !c.InsecureHTTP && !IsLoopback(c.Listen) {
		return fmt.Errorf("%w %s: listen on 127.0.0.1 or [::1], drop --plain-http to serve HTTPS with the "+
			"agent's own certificate, or pass --insecure-http when a proxy in front of the agent terminates TLS",
			ErrInsecureTransport, c.Listen)
	}
	return nil
}

// RetryPolicy is the apply retry policy the configuration asks for.
func (c Config) RetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: c.Apply.MaxAttempts, Backoff: time.Duration(c.Apply.Backoff),
		MaxBackoff: time.Duration(c.Apply.MaxBackoff)}
}
