package main_test

import (
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

func TestDependencies_NoWails(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(strings.ToLower(pkg), "wails") {
			t.Errorf("mooxsync-agent depends on %s", pkg)
		}
	}
}

// mustAppDB creates an application database with a posts table and returns its DSN.
func mustAppDB(t *testing.T) (dsn string, db *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(`CREATE TABLE posts (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		ulid TEXT NOT NULL UNIQUE,
		title TEXT,
		body TEXT,
		views INTEGER
	)`); err != nil {
		t.Fatal(err)
	}
	return "sqlite:" + path, db
}

func TestCLI_Refusals(t *testing.T) {
	dsn, _ := mustAppDB(t)
	state := t.TempDir()
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"no command", nil, nil, 2, "Usage"},
		{"unknown command", nil, []string{"frobnicate"}, 2, "unknown command"},
		{"no token", nil, []string{"serve", "--db", dsn, "--state", state}, 2, "SYNC_TOKEN is not set"},
		{"short token", []string{"SYNC_TOKEN=" + strings.Repeat("x", 31)}, []string{"serve", "--db", dsn, "--state", state}, 2,
			"must be at least 32"},
		{"plain HTTP on a non-loopback address", []string{"SYNC_TOKEN=" + syncToken},
			[]string{"serve", "--db", dsn, "--state", state, "--plain-http", "--listen", "0.0.0.0:0"}, 2, "--insecure-http"},
		{"plain HTTP on all interfaces", []string{"SYNC_TOKEN=" + syncToken},
			[]string{"serve", "--db", dsn, "--state", state, "--plain-http", "--listen", ":7443"}, 2, "--insecure-http"},
		{"bad flag", []string{"SYNC_TOKEN=" + syncToken}, []string{"serve", "--no-such-flag"}, 2, "no-such-flag"},
		{"no db", []string{"SYNC_TOKEN=" + syncToken}, []string{"serve", "--state", state}, 2, "--db"},
		{"bad switch", []string{"SYNC_TOKEN=" + syncToken, "SYNC_WEBHOOK_ENABLED=maybe"},
			[]string{"serve", "--db", dsn, "--state", state}, 2, "SYNC_WEBHOOK_ENABLED"},
		{"webhook path under /api", []string{"SYNC_TOKEN=" + syncToken},
			[]string{"serve", "--db", dsn, "--state", state, "--webhook-path", "/api/x"}, 2, "/api/"},
		{"unreachable database", []string{"SYNC_TOKEN=" + syncToken},
			[]string{"serve", "--db", "nosuch://x", "--state", state, "--plain-http", "--listen", "127.0.0.1:0"}, 1, "database"},
		{"init without state", nil, []string{"init"}, 2, "--state"},
		{"zero inbox retention", []string{"SYNC_TOKEN=" + syncToken},
			[]string{"serve", "--db", dsn, "--state", state, "--inbox-retention", "0s"}, 2, "inbox_retention"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, c.env, c.args...)
			if code != c.code || !strings.Contains(stdout+stderr, c.want) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant it to mention %q", code, c.code, stdout, stderr, c.want)
			}
			if strings.Contains(stdout+stderr, syncToken) {
				t.Fatal("the output shows the sync token")
			}
		})
	}
}

func TestCLI_VersionAndHelp(t *testing.T) {
	code, stdout, _ := runCLI(t, nil, "version")
	if code != 0 || !strings.HasPrefix(stdout, "mooxsync-agent "+agent.Version) {
		t.Fatalf("version: exit %d, %q", code, stdout)
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"serve", "--help"}, {"init", "-h"}} {
		code, stdout, _ := runCLI(t, nil, args...)
		if code != 0 || !strings.Contains(stdout, "Usage") {
			t.Fatalf("%v: exit %d, %q", args, code, stdout)
		}
	}
	_, stdout, _ = runCLI(t, nil, "serve", "--help")
	for _, want := range []string{"--listen", "--db", "--state", "--tls-cert", "--plain-http", "--insecure-http",
		"--webhook-path", "--log-level", "--config", "--inbox-retention", "SIGTERM"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("serve --help does not explain %s", want)
		}
	}
}

func TestCLI_InitThenServeTLS(t *testing.T) {
	dsn, _ := mustAppDB(t)
	state := filepath.Join(t.TempDir(), "state")
	addr := freeAddr(t)
	code, stdout, stderr := runCLI(t, nil, "init", "--state", state, "--host", "agent.example", "--host", "192.0.2.10",
		"--listen", addr, "--db", dsn, "--log-level", "debug", "--inbox-retention", "72h")
	if code != 0 {
		t.Fatalf("init: exit %d\n%s", code, stderr)
	}
	fingerprint := strings.TrimSpace(stdout)
	if !strings.HasPrefix(fingerprint, "sha256:") || len(fingerprint) != 7+64 {
		t.Fatalf("init printed %q, want a fingerprint", stdout)
	}
	cfgPath := filepath.Join(state, agent.ConfigFileName)
	cfg, err := agent.LoadConfig(cfgPath)
	if err != nil || cfg.Listen != addr || cfg.DB != dsn || cfg.State != state || cfg.LogLevel != "debug" ||
		time.Duration(cfg.InboxRetention) != 72*time.Hour {
		t.Fatalf("config = %+v, %v", cfg, err)
	}
	if fi, err := os.Stat(cfgPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode: %v %v", fi.Mode(), err)
	}
	certFile, keyFile := agent.CertPaths(state)
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode: %v %v", fi.Mode(), err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := protocol.Fingerprint(cert.Certificate[0]); got != fingerprint {
		t.Fatalf("printed %s, certificate is %s", fingerprint, got)
	}
	if code, _, stderr := runCLI(t, nil, "init", "--state", state); code != 2 || !strings.Contains(stderr, "--force") {
		t.Fatalf("init over an existing config: exit %d %s", code, stderr)
	}
	if code, stdout, _ := runCLI(t, nil, "init", "--state", state, "--force"); code != 0 || strings.TrimSpace(stdout) != fingerprint {
		t.Fatalf("init --force changed the certificate: exit %d %s", code, stdout)
	}
	if code, _, stderr := runCLI(t, nil, "init", "--state", state, "--force", "--listen", addr, "--db", dsn); code != 0 {
		t.Fatalf("init --force: exit %d %s", code, stderr)
	}

	// serve reads the config from the state directory and serves HTTPS with that certificate.
	p := startAgent(t, true, addr, nil, "--state", state)
	res, err := p.client.Get(p.base + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(res.TLS.PeerCertificates) == 0 {
		t.Fatal("no TLS")
	}
	sum := sha256.Sum256(res.TLS.PeerCertificates[0].Raw)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != fingerprint {
		t.Fatalf("served certificate %s, want %s", got, fingerprint)
	}
	if names := res.TLS.PeerCertificates[0].DNSNames; !strings.Contains(strings.Join(names, " "), "agent.example") {
		t.Fatalf("certificate names %v", names)
	}
	if got := p.enroll(2).TLSFingerprint; got != fingerprint {
		t.Fatalf("enrollment reports %s, want %s", got, fingerprint)
	}
	// Plain HTTP is not served on the TLS port.
	if r, err := http.Get("http://" + addr + "/api/health"); err == nil {
		r.Body.Close()
		if r.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered on the HTTPS port")
		}
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d", code)
	}
	if !strings.Contains(p.stderr.String(), `"msg":"agent stopped"`) {
		t.Fatalf("log has no clean stop:\n%s", p.stderr.String())
	}
	if strings.Contains(p.stderr.String(), platformToken) || strings.Contains(p.stderr.String(), syncToken) {
		t.Fatal("the log shows a token")
	}
}

func TestCLI_ServeGeneratesCertificateAndHonoursSwitches(t *testing.T) {
	dsn, _ := mustAppDB(t)
	state := t.TempDir()
	addr := freeAddr(t)
	p := startAgent(t, true, addr, []string{"SYNC_WEBHOOK_ENABLED=false", "SYNC_BACKUP_JOB_ENABLED=true"},
		"--db", dsn, "--state", state)
	certFile, _ := agent.CertPaths(state)
	fp, err := agent.CertificateFingerprint(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.enroll(2).TLSFingerprint; got != fp {
		t.Fatalf("enrollment reports %s, want %s", got, fp)
	}
	r := p.deliver(1, 2, protocol.Batch{BatchID: "b1", SourcePlatformID: 1, SyncID: 7})
	if r.status != http.StatusNotFound {
		t.Fatalf("disabled webhook = %d %s", r.status, r.body)
	}
	var logLine map[string]any
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, `"msg":"agent serving"`) {
			_ = json.Unmarshal([]byte(line), &logLine)
		}
	}
	if logLine["backup_job_enabled"] != true || logLine["webhook_enabled"] != false || logLine["tls_fingerprint"] != fp {
		t.Fatalf("serving log line = %v", logLine)
	}
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit code after SIGINT = %d", code)
	}
}

func TestCLI_PlainHTTP(t *testing.T) {
	dsn, _ := mustAppDB(t)
	t.Run("loopback with --plain-http", func(t *testing.T) {
		p := startAgent(t, false, freeAddr(t), nil, "--db", dsn, "--state", t.TempDir(), "--plain-http")
		if got := p.enroll(2).TLSFingerprint; got != "" {
			t.Fatalf("plain HTTP agent reports a fingerprint %q", got)
		}
		p.stop(syscall.SIGTERM)
	})
	t.Run("any address with --insecure-http", func(t *testing.T) {
		addr := freeAddr(t)
		port := addr[strings.LastIndex(addr, ":"):]
		p := startAgent(t, false, "0.0.0.0"+port, nil, "--db", dsn, "--state", t.TempDir(), "--insecure-http")
		p.enroll(2)
		if !strings.Contains(p.stderr.String(), "non-loopback") {
			t.Fatalf("no warning about plain HTTP:\n%s", p.stderr.String())
		}
		p.stop(syscall.SIGTERM)
	})
}
