package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// Values of the settings.
var (
	logLevels = []string{"debug", "info", "warn", "error"}
	themes    = []string{"light", "dark", "auto"}
	languages = []string{"en", "de"}
)

// SettingsService keeps the control center's preferences (a small JSON file, no secrets)
// and the fleet's sync token, and writes the snippet that installs an agent.
type SettingsService struct {
	ctx         context.Context
	log         *slog.Logger
	catalog     *catalog.Store
	secrets     secrets.Store
	settings    *settingsStore
	level       *slog.LevelVar
	backend     string
	secretsFile string
}

func (s *SettingsService) fail(op string, err error) error {
	return failure(s.log, "SettingsService."+op, err)
}

// Get returns the settings, whether a sync token exists, and what keeps the secrets, with
// a warning when they are not safe or cannot be stored.
func (s *SettingsService) Get() (Settings, error) {
	prefs, err := s.settings.load()
	if err != nil {
		s.log.Warn("read settings", "err", err)
	}
	out := Settings{LogLevel: prefs.LogLevel, Theme: prefs.Theme, Language: prefs.Language, SecretsBackend: s.backend}
	_, err = s.secrets.Get(s.ctx, secrets.SyncTokenKey)
	switch {
	case err == nil:
		out.HasSyncToken = true
	case errors.Is(err, secrets.ErrNotFound):
	case errors.Is(err, secrets.ErrUnavailable):
		w := "The secret store is unavailable, so tokens can be neither read nor stored: " + err.Error()
		out.SecretsWarning = &w
	default:
		return Settings{}, s.fail("Get", err)
	}
	if s.backend == BackendFile && out.SecretsWarning == nil {
		w := fmt.Sprintf("Tokens are kept in clear text in %s, protected only by its file permissions (0600). "+
			"Use the OS keyring (the desktop app, or web mode without --secrets-file) where you can.", s.secretsFile)
		out.SecretsWarning = &w
	}
	return out, nil
}

// Save stores log_level, theme and language (the other fields are read-only) and returns
// the settings.
func (s *SettingsService) Save(in Settings) (Settings, error) {
	p := preferences{LogLevel: in.LogLevel, Theme: in.Theme, Language: in.Language}
	if err := p.check(); err != nil {
		return Settings{}, err
	}
	if err := s.settings.save(p); err != nil {
		return Settings{}, s.fail("Save", err)
	}
	s.level.Set(parseLevel(p.LogLevel))
	return s.Get()
}

// GenerateSyncToken creates the fleet's sync token. An existing one is kept: replace it
// with RotateSyncToken.
func (s *SettingsService) GenerateSyncToken() error {
	_, err := s.secrets.Get(s.ctx, secrets.SyncTokenKey)
	switch {
	case err == nil:
		return newError(CodeConflict, "a sync token exists already; rotate it to replace it")
	case !errors.Is(err, secrets.ErrNotFound):
		return s.fail("GenerateSyncToken", err)
	}
	return s.fail("GenerateSyncToken", s.storeSyncToken())
}

// RotateSyncToken replaces the fleet's sync token. Every agent's SYNC_TOKEN must then be
// replaced with the new one (see AgentSnippetWithToken) and the agents restarted; until
// then the control center cannot reach them. Run Sync Platforms afterwards: the pair keys
// derive from the sync token.
func (s *SettingsService) RotateSyncToken() error {
	_, err := s.secrets.Get(s.ctx, secrets.SyncTokenKey)
	if errors.Is(err, secrets.ErrNotFound) {
		return newError(CodeNotFound, "there is no sync token yet: generate one")
	}
	if err != nil {
		return s.fail("RotateSyncToken", err)
	}
	return s.fail("RotateSyncToken", s.storeSyncToken())
}

func (s *SettingsService) storeSyncToken() error {
	token, err := protocol.GenerateToken()
	if err != nil {
		return err
	}
	if err := s.secrets.Set(s.ctx, secrets.SyncTokenKey, token); err != nil {
		return err
	}
	_, err = s.catalog.BumpRevision(s.ctx)
	return err
}

// AgentSnippet returns a shell snippet that installs and starts the agent of a platform
// on its server, with a placeholder where the sync token goes.
func (s *SettingsService) AgentSnippet(platformID int64) (string, error) {
	p, err := s.catalog.Platform(s.ctx, platformID)
	if err != nil {
		return "", s.fail("AgentSnippet", err)
	}
	return agentSnippet(p, ""), nil
}

// AgentSnippetWithToken is AgentSnippet with the fleet's sync token written in: only for
// an admin who explicitly asked for it, since the snippet is then a secret itself.
func (s *SettingsService) AgentSnippetWithToken(platformID int64) (string, error) {
	p, err := s.catalog.Platform(s.ctx, platformID)
	if err != nil {
		return "", s.fail("AgentSnippetWithToken", err)
	}
	token, err := s.secrets.Get(s.ctx, secrets.SyncTokenKey)
	if errors.Is(err, secrets.ErrNotFound) {
		return "", newError(CodeNotFound, "there is no sync token yet: generate one")
	}
	if err != nil {
		return "", s.fail("AgentSnippetWithToken", err)
	}
	return agentSnippet(p, token), nil
}

// preferences are the settings kept in the settings file.
type preferences struct {
	LogLevel string `json:"log_level"`
	Theme    string `json:"theme"`
	Language string `json:"language"`
}

func defaultPreferences() preferences {
	return preferences{LogLevel: "info", Theme: "auto", Language: "en"}
}

func (p preferences) check() error {
	for _, f := range []struct {
		field, value string
		allowed      []string
	}{{"log_level", p.LogLevel, logLevels}, {"theme", p.Theme, themes}, {"language", p.Language, languages}} {
		if !slices.Contains(f.allowed, f.value) {
			return fieldError(f.field, fmt.Sprintf("%s must be one of %q", f.field, f.allowed))
		}
	}
	return nil
}

// DefaultSettingsPath returns where the settings live: os.UserConfigDir()/mooxsync/settings.json.
func DefaultSettingsPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find config dir: %w", err)
	}
	return filepath.Join(dir, "mooxsync", "settings.json"), nil
}

// settingsStore reads and writes the settings file.
type settingsStore struct {
	path string
	mu   sync.Mutex
}

// load reads the settings; a missing file or value means the default, and a file that
// cannot be read gives the defaults with the error.
func (s *settingsStore) load() (preferences, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := defaultPreferences()
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read settings: %w", err)
	}
	var stored preferences
	if err := json.Unmarshal(b, &stored); err != nil {
		return p, fmt.Errorf("settings file %s is not valid JSON; using the defaults", s.path)
	}
	if slices.Contains(logLevels, stored.LogLevel) {
		p.LogLevel = stored.LogLevel
	}
	if slices.Contains(themes, stored.Theme) {
		p.Theme = stored.Theme
	}
	if slices.Contains(languages, stored.Language) {
		p.Language = stored.Language
	}
	return p, nil
}

// save replaces the settings file atomically (mode 0600, directory 0700).
func (s *settingsStore) save(p preferences) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".settings-*.tmp")
	if err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("save settings: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	return nil
}
