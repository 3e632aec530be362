package secrets

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/zalando/go-keyring"
)

// fakeBackend is a Backend of function fields; a nil field answers ErrNotFound.
type fakeBackend struct {
	GetFn    func(service, user string) (string, error)
	SetFn    func(service, user, password string) error
	DeleteFn func(service, user string) error
}

func (f *fakeBackend) Get(service, user string) (string, error) {
	if f.GetFn == nil {
		return "", keyring.ErrNotFound
	}
	return f.GetFn(service, user)
}

func (f *fakeBackend) Set(service, user, password string) error {
	if f.SetFn == nil {
		return keyring.ErrNotFound
	}
	return f.SetFn(service, user, password)
}

func (f *fakeBackend) Delete(service, user string) error {
	if f.DeleteFn == nil {
		return keyring.ErrNotFound
	}
	return f.DeleteFn(service, user)
}

// failing returns a backend whose every call fails with err.
func failing(err error) *fakeBackend {
	return &fakeBackend{
		GetFn:    func(string, string) (string, error) { return "", err },
		SetFn:    func(string, string, string) error { return err },
		DeleteFn: func(string, string) error { return err },
	}
}

func TestKeyring_Timeout(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	var calls sync.WaitGroup
	slow := &fakeBackend{
		GetFn: func(string, string) (string, error) {
			defer calls.Done()
			<-release
			return "late", nil
		},
		SetFn: func(string, string, string) error { return nil },
	}
	k := NewKeyring(WithBackend(slow), WithTimeout(50*time.Millisecond))

	calls.Add(1)
	start := time.Now()
	_, err := k.Get(ctx, SyncTokenKey)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("slow Get: err = %v, want ErrTimeout and ErrUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("timeout took %v", elapsed)
	}
	if !strings.Contains(err.Error(), "50ms") || !strings.Contains(err.Error(), "unlock") {
		t.Fatalf("timeout message does not say what happened: %v", err)
	}

	t.Run("NextCallWaitsForHungOne", func(t *testing.T) {
		// The hung Get still holds the keyring; a Set must time out too, not pile up.
		if err := k.Set(ctx, SyncTokenKey, secretValue); !errors.Is(err, ErrTimeout) {
			t.Fatalf("Set behind a hung call: err = %v, want ErrTimeout", err)
		} else if strings.Contains(err.Error(), secretValue) {
			t.Fatalf("timeout error leaks the value: %v", err)
		}
	})

	t.Run("RecoversWhenReleased", func(t *testing.T) {
		close(release)
		calls.Wait()
		k.timeout = time.Second
		if err := k.Set(ctx, SyncTokenKey, "v"); err != nil {
			t.Fatalf("Set after the hung call returned: %v", err)
		}
	})

	t.Run("CallerCancels", func(t *testing.T) {
		block := make(chan struct{})
		defer close(block)
		k := NewKeyring(WithBackend(&fakeBackend{GetFn: func(string, string) (string, error) {
			<-block
			return "", nil
		}}), WithTimeout(time.Minute))
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err := k.Get(cctx, SyncTokenKey)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Fatalf("cancelled Get: err = %v, want context.Canceled only", err)
		}
	})
}

func TestKeyring_DefaultTimeout(t *testing.T) {
	if k := NewKeyring(); k.timeout != 5*time.Second || k.service != "mooxsync" {
		t.Fatalf("defaults: timeout %v, service %q", k.timeout, k.service)
	}
	if k := NewKeyring(WithTimeout(-1)); k.timeout != DefaultTimeout {
		t.Fatalf("WithTimeout(-1) set timeout %v", k.timeout)
	}
}

func TestKeyring_Backend(t *testing.T) {
	ctx := context.Background()
	var gotService, gotUser, gotPassword string
	b := &fakeBackend{SetFn: func(service, user, password string) error {
		gotService, gotUser, gotPassword = service, user, password
		return nil
	}}
	k := NewKeyring(WithBackend(b), WithService("mooxsync-test"))
	if err := k.Set(ctx, PlatformKey(3), "tok"); err != nil {
		t.Fatal(err)
	}
	if gotService != "mooxsync-test" || gotUser != "platform/3" || gotPassword != "tok" {
		t.Fatalf("backend got (%q, %q, %q)", gotService, gotUser, gotPassword)
	}

	t.Run("Panic", func(t *testing.T) {
		k := NewKeyring(WithBackend(&fakeBackend{GetFn: func(string, string) (string, error) { panic("boom") }}))
		if _, err := k.Get(ctx, SyncTokenKey); err == nil {
			t.Fatal("panicking backend: no error")
		}
		if _, err := k.Get(ctx, SyncTokenKey); err == nil || errors.Is(err, ErrTimeout) {
			t.Fatalf("keyring not released after a panic: %v", err)
		}
	})
}

func TestKeyring_Errors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		err      error
		sentinel error
		mentions []string
	}{
		{"NotFound", keyring.ErrNotFound, ErrNotFound, nil},
		{"TooBig", keyring.ErrSetDataTooBig, ErrTooBig, nil},
		{"Unsupported", keyring.ErrUnsupportedPlatform, ErrUnavailable, []string{"file secret store"}},
		{"NoSecretService", dbus.Error{Name: "org.freedesktop.DBus.Error.ServiceUnknown",
			Body: []any{"The name org.freedesktop.secrets was not provided by any .service files"}},
			ErrUnavailable, []string{"gnome-keyring", "KeePassXC", "web mode", "not provided by any .service files"}},
		{"SpawnFailed", dbus.Error{Name: "org.freedesktop.DBus.Error.Spawn.ChildExited", Body: []any{"exited"}},
			ErrUnavailable, []string{"gnome-keyring"}},
		{"NoReply", dbus.Error{Name: "org.freedesktop.DBus.Error.NoReply", Body: []any{"no reply"}},
			ErrUnavailable, []string{"unlock"}},
		{"IsLocked", dbus.Error{Name: "org.freedesktop.Secret.Error.IsLocked", Body: []any{"locked"}},
			ErrUnavailable, []string{"locked"}},
		{"CollectionLocked", errors.New("failed to unlock correct collection '/org/freedesktop/secrets/aliases/default'"),
			ErrUnavailable, []string{"locked", "unlock"}},
		{"NoBusAddress", errors.New("dbus: couldn't determine address of session bus"),
			ErrUnavailable, []string{"DBUS_SESSION_BUS_ADDRESS", "dbus-run-session"}},
		{"BusDown", &net.OpError{Op: "dial", Net: "unix", Err: errors.New("connect: no such file or directory")},
			ErrUnavailable, []string{"dbus-daemon"}},
		{"AuthFailed", errors.New("dbus: authentication failed"), ErrUnavailable, []string{"dbus-daemon"}},
		{"OtherDBusError", dbus.Error{Name: "org.freedesktop.DBus.Error.InvalidArgs", Body: []any{"bad"}}, nil, []string{"bad"}},
		{"Other", errors.New("something else"), nil, []string{"something else"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := NewKeyring(WithBackend(failing(tt.err)))
			for op, err := range map[string]error{
				"get":    func() error { _, err := k.Get(ctx, SyncTokenKey); return err }(),
				"set":    k.Set(ctx, SyncTokenKey, secretValue),
				"delete": k.Delete(ctx, SyncTokenKey),
			} {
				if err == nil {
					t.Fatalf("%s: no error", op)
				}
				if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
					t.Errorf("%s: err = %v, want %v", op, err, tt.sentinel)
				}
				if tt.sentinel == nil && (errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound)) {
					t.Errorf("%s: err = %v should match no sentinel", op, err)
				}
				msg := err.Error()
				if !strings.Contains(msg, "keyring "+op+` secret "sync-token"`) {
					t.Errorf("%s: error %q does not say what was attempted", op, msg)
				}
				for _, m := range tt.mentions {
					if !strings.Contains(msg, m) {
						t.Errorf("%s: error %q does not mention %q", op, msg, m)
					}
				}
				if strings.Contains(msg, secretValue) {
					t.Errorf("%s: error leaks the value: %q", op, msg)
				}
			}
		})
	}
}

func TestCheckSessionBus(t *testing.T) {
	tests := []struct {
		name   string
		env    string
		exists []string
		ok     bool
	}{
		{"Address", "unix:path=/run/user/1000/bus", nil, true},
		{"RunUserBus", "", []string{"/run/user/1000/bus"}, true},
		{"RunUserDBusSession", "", []string{"/run/user/1000/dbus-session"}, true},
		{"Autolaunch", "autolaunch:", nil, false},
		{"Nothing", "", nil, false},
		{"OtherUsersBus", "", []string{"/run/user/0/bus"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "DBUS_SESSION_BUS_ADDRESS" {
					return tt.env
				}
				return ""
			}
			exists := func(p string) bool {
				for _, e := range tt.exists {
					if e == p {
						return true
					}
				}
				return false
			}
			err := checkSessionBus(getenv, exists, 1000)
			if tt.ok != (err == nil) {
				t.Fatalf("checkSessionBus = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && (!errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "DBUS_SESSION_BUS_ADDRESS")) {
				t.Fatalf("error %v does not explain the missing session bus", err)
			}
		})
	}
}

func TestKeyring_Preflight(t *testing.T) {
	called := false
	k := NewKeyring(WithBackend(&fakeBackend{GetFn: func(string, string) (string, error) {
		called = true
		return "", nil
	}}))
	k.preflight = func() error {
		return checkSessionBus(func(string) string { return "" }, func(string) bool { return false }, 1000)
	}
	_, err := k.Get(context.Background(), SyncTokenKey)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if called {
		t.Fatal("backend called although no session bus exists: go-keyring would autolaunch one")
	}
	if !strings.Contains(err.Error(), "file secret store") {
		t.Fatalf("error %q does not mention the server alternative", err)
	}
}
