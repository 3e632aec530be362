package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

var _ Store = (*File)(nil)

// File is a Store that keeps secrets in a JSON file readable by its owner only (mode 0600,
// in a 0700 directory). The values sit on disk in clear text, protected by nothing but the
// file's permissions.
//
// Use it only in web mode on a server that has no Secret Service, and only after the admin
// explicitly opted in; the desktop control center uses Keyring. File refuses to read a file
// that its group or other users may access (ErrInsecureFile). One process at a time may
// write the file; writes replace it atomically.
type File struct {
	path string
	mu   sync.Mutex
}

// NewFile returns a File store backed by the file at path, created on the first Set.
func NewFile(path string) *File { return &File{path: path} }

// DefaultFilePath returns where a File store lives by default:
// os.UserConfigDir()/mooxsync/secrets.json.
func DefaultFilePath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find config dir: %w", err)
	}
	return filepath.Join(dir, "mooxsync", "secrets.json"), nil
}

// Path returns the file the secrets live in.
func (s *File) Path() string { return s.path }

// fileVersion is the format of the secrets file.
const fileVersion = 1

type fileContent struct {
	Version int               `json:"version"`
	Secrets map[string]string `json:"secrets"`
}

// Get returns the secret stored under key, or ErrNotFound.
func (s *File) Get(ctx context.Context, key string) (string, error) {
	var v string
	err := s.with(ctx, "get", key, func(m map[string]string) (bool, error) {
		var ok bool
		if v, ok = m[key]; !ok {
			return false, ErrNotFound
		}
		return false, nil
	})
	return v, err
}

// Set stores value under key.
func (s *File) Set(ctx context.Context, key, value string) error {
	return s.with(ctx, "set", key, func(m map[string]string) (bool, error) {
		m[key] = value
		return true, nil
	})
}

// Delete removes the secret stored under key, or returns ErrNotFound.
func (s *File) Delete(ctx context.Context, key string) error {
	return s.with(ctx, "delete", key, func(m map[string]string) (bool, error) {
		if _, ok := m[key]; !ok {
			return false, ErrNotFound
		}
		delete(m, key)
		return true, nil
	})
}

// with reads the secrets under the lock, runs fn on them, and writes them back when fn
// changed them.
func (s *File) with(ctx context.Context, op, key string, fn func(m map[string]string) (changed bool, err error)) error {
	if err := begin(ctx, op, key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.read()
	if err != nil {
		return fmt.Errorf("%s secret %q: %w", op, key, err)
	}
	changed, err := fn(m)
	if err == nil && changed {
		err = s.write(m)
	}
	if err != nil {
		return fmt.Errorf("%s secret %q: %w", op, key, err)
	}
	return nil
}

// read loads the secrets; a missing file holds none. The permission check is made on the
// opened file, so the file checked is the file read.
func (s *File) read() (map[string]string, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return make(map[string]string), nil
	}
	if err != nil {
		return nil, fmt.Errorf("open secrets file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat secrets file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secrets file %s is not a regular file", s.path)
	}
	// Windows has no POSIX permission bits: access is governed by the profile directory's ACL.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; make it private with: chmod 600 %s",
			ErrInsecureFile, s.path, fi.Mode().Perm(), s.path)
	}
	var c fileContent
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		// The decoder's message may quote file content; say where, not what.
		return nil, fmt.Errorf("secrets file %s is not valid JSON of the expected shape", s.path)
	}
	if c.Version != fileVersion {
		return nil, fmt.Errorf("secrets file %s has format version %d, want %d", s.path, c.Version, fileVersion)
	}
	if c.Secrets == nil {
		c.Secrets = make(map[string]string)
	}
	return c.Secrets, nil
}

// write replaces the file atomically with one holding m, mode 0600.
func (s *File) write(m map[string]string) error {
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create secrets dir: %w", err)
	}
	b, err := json.MarshalIndent(fileContent{Version: fileVersion, Secrets: m}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode secrets: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".secrets-*.tmp")
	if err != nil {
		return fmt.Errorf("write secrets file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		_ = tmp.Close()
		return fmt.Errorf("write secrets file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write secrets file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write secrets file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write secrets file: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("write secrets file: %w", err)
	}
	return nil
}
