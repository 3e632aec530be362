//go:build !keyring

package secrets

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/zalando/go-keyring"
)

// These tests replace go-keyring's provider with its in-memory mock (keyring.MockInit),
// which cannot be undone; with -tags keyring, keyring_real_test.go runs the same contract
// against the real keyring instead.

func init() {
	implementations = append(implementations, implementation{"KeyringMock", MustOpenMockKeyring})
}

// MustOpenMockKeyring returns a Keyring on a fresh go-keyring mock. The session-bus check is
// off: the mock needs no D-Bus.
func MustOpenMockKeyring(tb testing.TB) Store {
	tb.Helper()
	keyring.MockInit()
	k := NewKeyring()
	k.preflight = nil
	return k
}

func TestKeyring_MockErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		err      error
		sentinel error
	}{
		{"NoSecretService", dbus.Error{Name: "org.freedesktop.DBus.Error.ServiceUnknown",
			Body: []any{"The name org.freedesktop.secrets was not provided by any .service files"}}, ErrUnavailable},
		{"Locked", errors.New("failed to unlock correct collection '/org/freedesktop/secrets/aliases/default'"), ErrUnavailable},
		{"TooBig", keyring.ErrSetDataTooBig, ErrTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyring.MockInitWithError(tt.err)
			k := NewKeyring()
			k.preflight = nil
			err := k.Set(ctx, SyncTokenKey, secretValue)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("err = %v, want %v", err, tt.sentinel)
			}
			if strings.Contains(err.Error(), secretValue) {
				t.Fatalf("error leaks the value: %v", err)
			}
		})
	}
}
