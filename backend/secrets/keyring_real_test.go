//go:build keyring

package secrets

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/zalando/go-keyring"
)

// These tests use the real OS keyring. On Linux, run them in a throwaway session with an
// unlocked gnome-keyring:
//
//	HOME=$(mktemp -d) dbus-run-session -- sh -c 'echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; go test -tags keyring ./backend/secrets/...'
//
// Every store uses its own service name, so no real mooxsync secret is ever touched.

func init() {
	implementations = append(implementations, implementation{"KeyringReal", func(tb testing.TB) Store {
		return MustOpenRealKeyring(tb)
	}})
}

// MustOpenRealKeyring returns a Keyring on the OS keyring under a service unique to the
// test, and deletes what the test left behind at cleanup.
func MustOpenRealKeyring(tb testing.TB) *Keyring {
	tb.Helper()
	service := fmt.Sprintf("mooxsync-test-%d", time.Now().UnixNano())
	tb.Cleanup(func() { _ = keyring.DeleteAll(service) })
	return NewKeyring(WithService(service))
}

func TestKeyring_Real(t *testing.T) {
	ctx := context.Background()
	k := MustOpenRealKeyring(t)

	t.Run("StoredInOSKeyring", func(t *testing.T) {
		if err := k.Set(ctx, PlatformKey(1), secretValue); err != nil {
			t.Fatalf("Set: %v", err)
		}
		got, err := keyring.Get(k.service, PlatformKey(1))
		if err != nil || got != secretValue {
			t.Fatalf("go-keyring sees %q, %v; want the value set through Keyring", got, err)
		}
		if err := k.Delete(ctx, PlatformKey(1)); err != nil {
			t.Fatal(err)
		}
		if _, err := keyring.Get(k.service, PlatformKey(1)); !errors.Is(err, keyring.ErrNotFound) {
			t.Fatalf("after Delete go-keyring sees %v", err)
		}
	})

	t.Run("FastEnough", func(t *testing.T) {
		start := time.Now()
		for i := 0; i < 10; i++ {
			if _, err := k.Get(ctx, SyncTokenKey); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get: %v", err)
			}
		}
		if per := time.Since(start) / 10; per > time.Second {
			t.Fatalf("a keyring call takes %v", per)
		}
	})

	t.Run("SessionBusFound", func(t *testing.T) {
		if err := sessionBusPreflight(); err != nil {
			t.Fatalf("preflight inside a D-Bus session: %v", err)
		}
	})
}
