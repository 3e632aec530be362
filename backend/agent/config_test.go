package agent_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

func TestConfig_Defaults(t *testing.T) {
	c := agent.DefaultConfig()
	if !slices.Equal(c.UniqueIdentifierFields, []string{"ulid", "uuid", "slug", "name", "title"}) ||
		!slices.Equal(c.LocalIdentifierFields, []string{"ID", "uuid", "ulid", "id"}) ||
		c.WebhookPath != "/sync-webhook" || c.BodyLimit != 32<<20 || c.Listen != ":7443" ||
		!c.SyncWebhook.Enabled || c.SyncBackupJob.Enabled || !c.InitialLoad.Enabled {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestConfig_InitialLoadSwitch(t *testing.T) {
	c := agent.DefaultConfig()
	env := map[string]string{agent.EnvInitialLoadEnabled: "false"}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.InitialLoad.Enabled {
		t.Fatal("SYNC_INITIAL_LOAD_ENABLED=false left the initial load on")
	}
	env[agent.EnvInitialLoadEnabled] = "maybe"
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err == nil {
		t.Fatal("a value that is not a boolean was accepted")
	}
}

func TestConfig_FileThenEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.json")
	file := `{
		"listen": "127.0.0.1:9000", "db": "sqlite:/x.db", "state": "/var/lib/mooxsync",
		"webhook_path": "/from-file", "log_level": "debug",
		"unique_identifier_fields": ["uuid"],
		"models_with_platform_relations": ["posts"],
		"transformer_bindings": {"users": "wp_user", "posts": {"transformer": "declarative", "config": {"drop": ["x"]}}},
		"sync_bindings": {"users": "wp_user_meta", "wp_users": {"handler": "meta", "config": {"main_key": "user_login"}}},
		"sync_webhook": {"enabled": false}, "sync_backup_job": {"enabled": true},
		"apply": {"max_attempts": 7, "backoff": "250ms", "max_backoff": "10s"}
	}`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := agent.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || c.WebhookPath != "/from-file" || !slices.Equal(c.UniqueIdentifierFields, []string{"uuid"}) ||
		!slices.Equal(c.LocalIdentifierFields, []string{"ID", "uuid", "ulid", "id"}) || c.SyncWebhook.Enabled ||
		!c.SyncBackupJob.Enabled || !c.SyncEloquentListener.Enabled || c.SyncBindings["users"].Handler != "wp_user_meta" ||
		c.SyncBindings["wp_users"].Handler != "meta" || string(c.SyncBindings["wp_users"].Config) != `{"main_key": "user_login"}` ||
		c.TransformerBindings["users"].Transformer != "wp_user" || c.TransformerBindings["posts"].Transformer != "declarative" ||
		c.RetryPolicy() != (agent.RetryPolicy{MaxAttempts: 7, Backoff: 250 * time.Millisecond, MaxBackoff: 10 * time.Second}) {
		t.Fatalf("loaded = %+v", c)
	}
	env := map[string]string{
		"SYNC_WEBHOOK_URL":        "https://blog.example/hooks/in",
		"SYNC_WEBHOOK_ENABLED":    "true",
		"SYNC_LISTENER_ENABLED":   "0",
		"SYNC_BACKUP_JOB_ENABLED": "false",
		"MOOXSYNC_LISTEN":         "127.0.0.1:9100",
	}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.WebhookPath != "/hooks/in" || !c.SyncWebhook.Enabled || c.SyncEloquentListener.Enabled || c.SyncBackupJob.Enabled ||
		c.Listen != "127.0.0.1:9100" || c.DB != "sqlite:/x.db" {
		t.Fatalf("after env = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(path, []byte(`{"listen": ":1", "lisen": ":2"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.LoadConfig(path); err == nil || !strings.Contains(err.Error(), "lisen") {
		t.Fatalf("misspelt setting: %v", err)
	}
	bad := agent.DefaultConfig()
	if err := bad.ApplyEnv(func(k string) string {
		if k == "SYNC_WEBHOOK_ENABLED" {
			return "perhaps"
		}
		return ""
	}); err == nil {
		t.Fatal("a bad switch value passed")
	}
}

func TestConfig_Validate(t *testing.T) {
	ok := agent.DefaultConfig()
	ok.DB, ok.State = "sqlite:/x.db", "/state"
	cases := []struct {
		name string
		edit func(*agent.Config)
		want string
	}{
		{"fine", func(*agent.Config) {}, ""},
		{"plain HTTP on loopback", func(c *agent.Config) { c.PlainHTTP, c.Listen = true, "127.0.0.1:7443" }, ""},
		{"plain HTTP on [::1]", func(c *agent.Config) { c.PlainHTTP, c.Listen = true, "[::1]:7443" }, ""},
		{"plain HTTP on localhost", func(c *agent.Config) { c.PlainHTTP, c.Listen = true, "localhost:7443" }, ""},
		{"plain HTTP on all interfaces", func(c *agent.Config) { c.PlainHTTP = true }, "--insecure-http"},
		{"plain HTTP on a public address", func(c *agent.Config) { c.PlainHTTP, c.Listen = true, "203.0.113.7:7443" }, "--insecure-http"},
		{"insecure HTTP anywhere", func(c *agent.Config) { c.InsecureHTTP = true }, ""},
		{"TLS and plain", func(c *agent.Config) { c.InsecureHTTP, c.TLSCert, c.TLSKey = true, "c", "k" }, "exclude"},
		{"cert without key", func(c *agent.Config) { c.TLSCert = "c" }, "go together"},
		{"no db", func(c *agent.Config) { c.DB = "" }, "--db"},
		{"no state", func(c *agent.Config) { c.State = "" }, "--state"},
		{"bad listen", func(c *agent.Config) { c.Listen = "7443" }, "listen"},
		{"bad log level", func(c *agent.Config) { c.LogLevel = "loud" }, "log level"},
		{"webhook under /api", func(c *agent.Config) { c.WebhookPath = "/api/hook" }, "/api/"},
		{"zero attempts", func(c *agent.Config) { c.Apply.MaxAttempts = 0 }, "max_attempts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := ok
			c.edit(&cfg)
			err := cfg.Validate()
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Validate() = %v, want %q", err, c.want)
			}
		})
	}
	cfg := ok
	cfg.PlainHTTP = true
	if err := cfg.Validate(); !errors.Is(err, agent.ErrInsecureTransport) {
		t.Fatalf("= %v, want ErrInsecureTransport", err)
	}
}

func TestCheckWebhookPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"/sync-webhook": true, "/hooks/abc_DEF-1.2~": true, "sync-webhook": false, "/": false, "/api/x": false,
		"/api": false, "/a//b": false, "/a/../b": false, "/a/": false, "/a b": false, "/{id}": false, "/a?x": false,
	} {
		if err := agent.CheckWebhookPath(p); (err == nil) != ok {
			t.Errorf("CheckWebhookPath(%q) = %v, want ok=%v", p, err, ok)
		}
	}
	for in, want := range map[string]string{"sync-webhook": "/sync-webhook", "https://x.example/a/b": "/a/b", "/c": "/c"} {
		if got, err := agent.WebhookPathFromURL(in); err != nil || got != want {
			t.Errorf("WebhookPathFromURL(%q) = %q, %v", in, got, err)
		}
	}
}

func TestGenerateCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, created, err := agent.EnsureCertificate(dir, agent.CertificateHosts([]string{"agent.example", "192.0.2.1"}))
	if err != nil || !created {
		t.Fatalf("EnsureCertificate = %v, %v", created, err)
	}
	b, _ := os.ReadFile(certFile)
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cert.DNSNames, "agent.example") || !slices.Contains(cert.DNSNames, "localhost") ||
		!slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("192.0.2.1")) }) ||
		!slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool { return ip.IsLoopback() }) {
		t.Fatalf("names %v %v", cert.DNSNames, cert.IPAddresses)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA || cert.IsCA {
		t.Fatalf("key %v, CA %v", cert.PublicKeyAlgorithm, cert.IsCA)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, %v", fi.Mode(), err)
	}
	_, fp, err := agent.LoadCertificate(certFile, keyFile)
	if err != nil || fp != protocol.Fingerprint(block.Bytes) {
		t.Fatalf("fingerprint %s, %v", fp, err)
	}
	_, _, created, err = agent.EnsureCertificate(dir, nil)
	if err != nil || created {
		t.Fatalf("a second EnsureCertificate regenerated: %v %v", created, err)
	}
	if fp2, _ := agent.CertificateFingerprint(certFile); fp2 != fp {
		t.Fatal("the certificate changed")
	}
}
