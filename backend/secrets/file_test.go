package secrets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFile_Permissions(t *testing.T) {
	ctx := context.Background()

	t.Run("CreatesPrivateFile", func(t *testing.T) {
		s := MustOpenFile(t)
		if err := s.Set(ctx, SyncTokenKey, secretValue); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Fatalf("file mode = %04o, want 0600", perm)
		}
		di, err := os.Stat(filepath.Dir(s.Path()))
		if err != nil {
			t.Fatal(err)
		}
		if perm := di.Mode().Perm(); perm != 0o700 {
			t.Fatalf("dir mode = %04o, want 0700", perm)
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Path()), ".secrets-*"))
		if len(left) != 0 {
			t.Fatalf("temporary files left behind: %v", left)
		}
	})

	t.Run("RefusesGroupOrOtherAccess", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o666} {
			s := MustOpenFile(t)
			if err := s.Set(ctx, SyncTokenKey, secretValue); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(s.Path(), mode); err != nil {
				t.Fatal(err)
			}
			_, err := s.Get(ctx, SyncTokenKey)
			if !errors.Is(err, ErrInsecureFile) {
				t.Fatalf("mode %04o: err = %v, want ErrInsecureFile", mode, err)
			}
			if !strings.Contains(err.Error(), "chmod 600 "+s.Path()) {
				t.Fatalf("error %q does not say how to fix it", err)
			}
			if err := s.Set(ctx, PlatformKey(1), "x"); !errors.Is(err, ErrInsecureFile) {
				t.Fatalf("mode %04o: Set overwrote an insecure file: %v", mode, err)
			}
		}
	})

	t.Run("AcceptsOwnerOnlyModes", func(t *testing.T) {
		s := MustOpenFile(t)
		if err := s.Set(ctx, SyncTokenKey, secretValue); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(s.Path(), 0o400); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, SyncTokenKey); err != nil || got != secretValue {
			t.Fatalf("read-only owner file: %q, %v", got, err)
		}
	})
}

func TestFile_Corrupt(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		content string
	}{
		{"NotJSON", "sync-token=" + secretValue},
		{"TruncatedJSON", `{"version":1,"secrets":{"sync-token":"` + secretValue},
		{"UnknownField", `{"version":1,"secrets":{},"extra":"` + secretValue + `"}`},
		{"WrongType", `{"version":1,"secrets":["` + secretValue + `"]}`},
		{"FutureVersion", `{"version":2,"secrets":{"sync-token":"` + secretValue + `"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := MustOpenFile(t)
			if err := os.MkdirAll(filepath.Dir(s.Path()), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.Path(), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Get(ctx, SyncTokenKey)
			if err == nil {
				t.Fatal("corrupt file read without error")
			}
			if strings.Contains(err.Error(), secretValue) {
				t.Fatalf("error quotes the file's content: %v", err)
			}
			if !strings.Contains(err.Error(), s.Path()) {
				t.Fatalf("error %q does not name the file", err)
			}
			if err := s.Set(ctx, SyncTokenKey, "x"); err == nil {
				t.Fatal("Set replaced a file it could not read")
			}
		})
	}

	t.Run("NotAFile", func(t *testing.T) {
		s := NewFile(t.TempDir())
		if _, err := s.Get(ctx, SyncTokenKey); err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("directory as secrets file: %v", err)
		}
	})

	t.Run("NullSecrets", func(t *testing.T) {
		s := MustOpenFile(t)
		if err := os.MkdirAll(filepath.Dir(s.Path()), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.Path(), []byte(`{"version":1,"secrets":null}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, SyncTokenKey); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get: %v", err)
		}
		if err := s.Set(ctx, SyncTokenKey, "v"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestFile_SharedBetweenStores(t *testing.T) {
	ctx := context.Background()
	a := MustOpenFile(t)
	b := NewFile(a.Path())
	if err := a.Set(ctx, SyncTokenKey, secretValue); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, SyncTokenKey); err != nil || got != secretValue {
		t.Fatalf("second store reads %q, %v", got, err)
	}
}

func TestDefaultFilePath(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/tmp/xdg-config")
	got, err := DefaultFilePath()
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := os.UserConfigDir()
	if got != filepath.Join(dir, "mooxsync", "secrets.json") {
		t.Fatalf("DefaultFilePath = %q", got)
	}
}
