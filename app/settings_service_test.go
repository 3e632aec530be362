package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/secrets"
)

func TestSettingsService(t *testing.T) {
	ta := mustOpenApp(t)
	ctx := context.Background()

	s, err := ta.Settings.Get()
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{LogLevel: "info", Theme: "auto", Language: "en", SecretsBackend: BackendKeyring}
	if s != want {
		t.Fatalf("defaults %+v, want %+v", s, want)
	}

	t.Run("save", func(t *testing.T) {
		_, err := ta.Settings.Save(Settings{LogLevel: "info", Theme: "pink", Language: "en"})
		appErr(t, err, CodeValidation, "theme")
		s, err := ta.Settings.Save(Settings{LogLevel: "debug", Theme: "dark", Language: "de", HasSyncToken: true, SecretsBackend: "file"})
		if err != nil {
			t.Fatal(err)
		}
		if s.LogLevel != "debug" || s.Theme != "dark" || s.Language != "de" || s.HasSyncToken || s.SecretsBackend != BackendKeyring {
			t.Fatalf("saved %+v: the read-only fields must not change", s)
		}
		if ta.level.Level() != slog.LevelDebug {
			t.Errorf("log level %v, want debug", ta.level.Level())
		}
		fi, err := os.Stat(filepath.Join(ta.dir, "settings.json"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("settings file: %v, %v", fi, err)
		}
		// A new App reads them back.
		again := mustOpenApp(t, func(o *Options) { o.SettingsPath = filepath.Join(ta.dir, "settings.json") })
		if s2, _ := again.Settings.Get(); s2.Theme != "dark" || again.level.Level() != slog.LevelDebug {
			t.Fatalf("reloaded %+v, level %v", s2, again.level.Level())
		}
	})

	t.Run("sync token", func(t *testing.T) {
		appErr(t, ta.Settings.RotateSyncToken(), CodeNotFound, "")
		if err := ta.Settings.GenerateSyncToken(); err != nil {
			t.Fatal(err)
		}
		first, _ := ta.secrets.Get(ctx, secrets.SyncTokenKey)
		if len(first) != 43 {
			t.Fatalf("sync token %q", first)
		}
		appErr(t, ta.Settings.GenerateSyncToken(), CodeConflict, "")
		rev, _ := ta.catalog.Revision(ctx)
		if err := ta.Settings.RotateSyncToken(); err != nil {
			t.Fatal(err)
		}
		second, _ := ta.secrets.Get(ctx, secrets.SyncTokenKey)
		if second == first {
			t.Fatal("rotation kept the sync token")
		}
		if now, _ := ta.catalog.Revision(ctx); now != rev+1 {
			t.Errorf("revision %d after rotation, want %d", now, rev+1)
		}
		if s, _ := ta.Settings.Get(); !s.HasSyncToken || s.SecretsWarning != nil {
			t.Fatalf("settings %+v", s)
		}
	})

	t.Run("agent snippet", func(t *testing.T) {
		p := ta.mustPlatform(t, "Shop", "https://shop.example:7443")
		token, _ := ta.secrets.Get(ctx, secrets.SyncTokenKey)
		snippet, err := ta.Settings.AgentSnippet(p.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range []string{
			"mooxsync-agent init --state /var/lib/mooxsync-agent --listen ':7443' --host 'shop.example'",
			"/etc/systemd/system/mooxsync-agent.service",
			"EnvironmentFile=/etc/mooxsync-agent/env",
			"chmod 0600 /etc/mooxsync-agent/env",
			"ExecStart=/usr/local/bin/mooxsync-agent serve --state /var/lib/mooxsync-agent",
			"systemctl enable --now mooxsync-agent",
			syncTokenPlaceholder,
		} {
			if !strings.Contains(snippet, part) {
				t.Errorf("snippet lacks %q:\n%s", part, snippet)
			}
		}
		if strings.Contains(snippet, token) || strings.Contains(snippet, "Environment=SYNC_TOKEN") {
			t.Fatalf("the default snippet carries the sync token or sets it inline:\n%s", snippet)
		}
		withToken, err := ta.Settings.AgentSnippetWithToken(p.ID)
		if err != nil || !strings.Contains(withToken, "'"+token+"'") || strings.Contains(withToken, syncTokenPlaceholder) {
			t.Fatalf("AgentSnippetWithToken = %v:\n%s", err, withToken)
		}
		_, err = ta.Settings.AgentSnippet(999)
		appErr(t, err, CodeNotFound, "")
	})
}

func TestSettingsService_SecretsWarning(t *testing.T) {
	t.Run("file backend", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "secrets.json")
		ta := mustOpenApp(t, func(o *Options) {
			o.Secrets, o.SecretsBackend, o.SecretsFile = secrets.NewFile(file), BackendFile, file
		})
		if err := ta.Settings.GenerateSyncToken(); err != nil {
			t.Fatal(err)
		}
		s, err := ta.Settings.Get()
		if err != nil || s.SecretsBackend != BackendFile || !s.HasSyncToken || s.SecretsWarning == nil ||
			!strings.Contains(*s.SecretsWarning, file) {
			t.Fatalf("Get = %+v, %v", s, err)
		}
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("secrets file %v, %v", fi, err)
		}
	})
	t.Run("keyring unavailable", func(t *testing.T) {
		ta := mustOpenApp(t, func(o *Options) { o.Secrets = unavailableSecrets{} })
		s, err := ta.Settings.Get()
		if err != nil || s.HasSyncToken || s.SecretsWarning == nil || !strings.Contains(*s.SecretsWarning, "gnome-keyring") {
			t.Fatalf("Get = %+v, %v", s, err)
		}
		appErr(t, ta.Settings.GenerateSyncToken(), CodeKeyringUnavailable, "")
	})
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote(`it's`); got != `'it'\''s'` {
		t.Fatalf("shellQuote = %s", got)
	}
}
