package secrets

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// implementation builds a fresh, empty Store for one test.
type implementation struct {
	name string
	new  func(tb testing.TB) Store
}

// implementations are the Stores the contract runs against. Build-tagged files add the
// Keyring: on go-keyring's mock by default, on the real OS keyring with -tags keyring.
var implementations = []implementation{
	{"Memory", func(tb testing.TB) Store { return NewMemory() }},
	{"File", func(tb testing.TB) Store { return MustOpenFile(tb) }},
}

// MustOpenFile returns a File store in a fresh temporary directory.
func MustOpenFile(tb testing.TB) *File {
	tb.Helper()
	return NewFile(filepath.Join(tb.TempDir(), "config", "mooxsync", "secrets.json"))
}

// secretValue is a value no error message may ever contain.
const secretValue = "s3cr3t-VALUE-must-not-leak-0123456789abcdef"

func TestStore_Contract(t *testing.T) {
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) { testContract(t, impl.new) })
	}
}

func testContract(t *testing.T, newStore func(tb testing.TB) Store) {
	ctx := context.Background()

	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, SyncTokenKey); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get missing: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("SetGetReplaceDelete", func(t *testing.T) {
		s := newStore(t)
		if err := s.Set(ctx, SyncTokenKey, secretValue); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, SyncTokenKey); err != nil || got != secretValue {
			t.Fatalf("Get = %q, %v; want the value set", got, err)
		}
		if err := s.Set(ctx, SyncTokenKey, "second"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, SyncTokenKey); err != nil || got != "second" {
			t.Fatalf("Get after replace = %q, %v", got, err)
		}
		if err := s.Delete(ctx, SyncTokenKey); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, SyncTokenKey); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, SyncTokenKey); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Delete missing: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("KeysAreIndependent", func(t *testing.T) {
		s := newStore(t)
		keys := []string{SyncTokenKey, PlatformKey(1), PlatformKey(2), PlatformKey(10)}
		for _, k := range keys {
			if err := s.Set(ctx, k, "value of "+k); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, PlatformKey(1)); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			got, err := s.Get(ctx, k)
			if k == PlatformKey(1) {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("Get(%s) after its Delete = %q, %v", k, got, err)
				}
				continue
			}
			if err != nil || got != "value of "+k {
				t.Errorf("Get(%s) = %q, %v", k, got, err)
			}
		}
		for _, k := range keys[1:] {
			if err := s.Delete(ctx, k); err != nil && k != PlatformKey(1) {
				t.Errorf("cleanup %s: %v", k, err)
			}
		}
		_ = s.Delete(ctx, SyncTokenKey)
	})

	t.Run("Values", func(t *testing.T) {
		s := newStore(t)
		values := map[string]string{
			"Unicode":   "päßwörd ✓ 密码",
			"Newlines":  "line 1\nline 2\r\n\ttabbed \"quoted\" \\ backslash",
			"Token":     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_",
			"FourKiB":   strings.Repeat("x", 4096),
			"OneSpace":  " ",
			"JSONLike":  `{"secrets":{"x":"y"}}`,
			"NULInside": "a\x00b",
		}
		for name, v := range values {
			key := "test/" + name
			if err := s.Set(ctx, key, v); err != nil {
				t.Errorf("Set %s: %v", name, err)
				continue
			}
			if got, err := s.Get(ctx, key); err != nil || got != v {
				t.Errorf("Get %s = %q, %v; want %q", name, got, err, v)
			}
			if err := s.Delete(ctx, key); err != nil {
				t.Errorf("Delete %s: %v", name, err)
			}
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		s := newStore(t)
		for _, key := range []string{"", "with space", "tab\there", "new\nline", strings.Repeat("k", 256)} {
			err := s.Set(ctx, key, secretValue)
			if !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Set(%q): err = %v, want ErrInvalidKey", key, err)
			}
			if err != nil && strings.Contains(err.Error(), secretValue) {
				t.Errorf("Set(%q) error leaks the value: %v", key, err)
			}
			if _, err := s.Get(ctx, key); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Get(%q): err = %v, want ErrInvalidKey", key, err)
			}
			if err := s.Delete(ctx, key); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Delete(%q): err = %v, want ErrInvalidKey", key, err)
			}
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Set(cctx, SyncTokenKey, secretValue); !errors.Is(err, context.Canceled) {
			t.Fatalf("Set with cancelled ctx: err = %v, want context.Canceled", err)
		}
		if _, err := s.Get(ctx, SyncTokenKey); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a cancelled Set stored a value: %v", err)
		}
		if _, err := s.Get(cctx, SyncTokenKey); !errors.Is(err, context.Canceled) {
			t.Fatalf("Get with cancelled ctx: err = %v, want context.Canceled", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		for i := int64(1); i <= 8; i++ {
			wg.Add(1)
			go func(id int64) {
				defer wg.Done()
				key := PlatformKey(100 + id)
				v := "token-" + key
				if err := s.Set(ctx, key, v); err != nil {
					t.Error(err)
					return
				}
				if got, err := s.Get(ctx, key); err != nil || got != v {
					t.Errorf("Get(%s) = %q, %v", key, got, err)
				}
				if err := s.Delete(ctx, key); err != nil {
					t.Error(err)
				}
			}(i)
		}
		wg.Wait()
	})
}

func TestPlatformKey(t *testing.T) {
	tests := []struct {
		id   int64
		want string
	}{{1, "platform/1"}, {42, "platform/42"}, {9007199254740993, "platform/9007199254740993"}}
	for _, tt := range tests {
		if got := PlatformKey(tt.id); got != tt.want {
			t.Errorf("PlatformKey(%d) = %q, want %q", tt.id, got, tt.want)
		}
	}
	if SyncTokenKey != "sync-token" || Service != "mooxsync" {
		t.Fatalf("SyncTokenKey %q, Service %q", SyncTokenKey, Service)
	}
}
