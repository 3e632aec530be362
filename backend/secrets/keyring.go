package secrets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/zalando/go-keyring"
)

var _ Store = (*Keyring)(nil)

// DefaultTimeout bounds every keyring call unless WithTimeout says otherwise.
const DefaultTimeout = 5 * time.Second

// Backend is the keyring API a Keyring calls: go-keyring's package functions by default
// (macOS Keychain, Windows Credential Manager, the Secret Service elsewhere).
type Backend interface {
	Get(service, user string) (string, error)
	Set(service, user, password string) error
	Delete(service, user string) error
}

// goKeyring is the Backend of go-keyring's package functions, so keyring.MockInit applies.
type goKeyring struct{}

// Get, Set and Delete call go-keyring's package functions of the same names.

func (goKeyring) Get(service, user string) (string, error) { return keyring.Get(service, user) }
func (goKeyring) Set(service, user, password string) error {
	return keyring.Set(service, user, password)
}
func (goKeyring) Delete(service, user string) error { return keyring.Delete(service, user) }

// Keyring is a Store in the OS keyring, under service "mooxsync" by default.
//
// go-keyring calls can block for ever (a D-Bus call waiting on an unlock prompt nobody
// answers), so every call runs in its own goroutine and gives up after the timeout with an
// error matching ErrTimeout and ErrUnavailable. A call that timed out may still complete
// later. Calls run one at a time: a hung call holds back the next ones until their own
// timeouts, so at most one goroutine is ever left behind. Build one with NewKeyring.
type Keyring struct {
	service   string
	timeout   time.Duration
	backend   Backend
	preflight func() error
	sem       chan struct{}
}

// KeyringOption configures a Keyring.
type KeyringOption func(*Keyring)

// WithService stores secrets under another keyring service than Service (for tests).
func WithService(service string) KeyringOption {
	return func(k *Keyring) { k.service = service }
}

// WithTimeout bounds every keyring call by d instead of DefaultTimeout.
func WithTimeout(d time.Duration) KeyringOption {
	return func(k *Keyring) {
		if d > 0 {
			k.timeout = d
		}
	}
}

// WithBackend makes the Keyring call b instead of the OS keyring, and skips the check for
// a D-Bus session bus, which only concerns the OS keyring.
func WithBackend(b Backend) KeyringOption {
	return func(k *Keyring) {
		k.backend = b
		k.preflight = nil
	}
}

// NewKeyring returns a Keyring on the OS keyring, under service "mooxsync", with calls
// bounded by DefaultTimeout.
func NewKeyring(opts ...KeyringOption) *Keyring {
	k := &Keyring{
		service:   Service,
		timeout:   DefaultTimeout,
		backend:   goKeyring{},
		preflight: sessionBusPreflight,
		sem:       make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(k)
	}
	return k
}

// Get returns the secret stored under key, or ErrNotFound.
func (k *Keyring) Get(ctx context.Context, key string) (string, error) {
	return k.call(ctx, "keyring get", key, func() (string, error) { return k.backend.Get(k.service, key) })
}

// Set stores value under key.
func (k *Keyring) Set(ctx context.Context, key, value string) error {
	_, err := k.call(ctx, "keyring set", key, func() (string, error) { return "", k.backend.Set(k.service, key, value) })
	return err
}

// Delete removes the secret stored under key, or returns ErrNotFound.
func (k *Keyring) Delete(ctx context.Context, key string) error {
	_, err := k.call(ctx, "keyring delete", key, func() (string, error) { return "", k.backend.Delete(k.service, key) })
	return err
}

type callResult struct {
	value string
	err   error
}

// call runs fn in a goroutine, one call at a time, and gives up when the timeout or ctx
// ends first.
func (k *Keyring) call(ctx context.Context, op, key string, fn func() (string, error)) (string, error) {
	if err := begin(ctx, op, key); err != nil {
		return "", err
	}
	if k.preflight != nil {
		if err := k.preflight(); err != nil {
			return "", fmt.Errorf("%s secret %q: %w", op, key, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	select {
	case k.sem <- struct{}{}:
	case <-ctx.Done():
		return "", k.doneErr(ctx, op, key)
	}
	done := make(chan callResult, 1)
	go func() {
		defer func() { <-k.sem }()
		defer func() {
			if r := recover(); r != nil {
				done <- callResult{err: errors.New("keyring backend panicked")}
			}
		}()
		v, err := fn()
		done <- callResult{v, err}
	}()
	var r callResult
	select {
	case r = <-done:
	case <-ctx.Done():
		select {
		case r = <-done: // finished just in time
		default:
			return "", k.doneErr(ctx, op, key)
		}
	}
	if r.err != nil {
		return "", classify(op, key, r.err)
	}
	return r.value, nil
}

// doneErr explains why a call gave up: the caller cancelled, or the keyring did not answer.
func (k *Keyring) doneErr(ctx context.Context, op, key string) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("%s secret %q: %w", op, key, ctx.Err())
	}
	return fmt.Errorf("%s secret %q: %w after %s (%w): %s", op, key, ErrTimeout, k.timeout, ErrUnavailable, hintTimeout)
}

// What to do when the keyring is unavailable, one message per cause.
const (
	serverHint = "on a server without a desktop, use web mode with the file secret store (explicit opt-in)"

	hintNoBus = "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set): mooxsync keeps its tokens in the " +
		"desktop keyring, reached over the session bus. Run it in a desktop session, or under dbus-run-session " +
		"with gnome-keyring-daemon or KeePassXC running; " + serverHint
	hintBusDown = "cannot connect to the D-Bus session bus: is the session's dbus-daemon running? Run mooxsync in " +
		"a desktop session, or under dbus-run-session; " + serverHint
	hintNoService = "no Secret Service on the D-Bus session bus: install and start gnome-keyring (package " +
		"gnome-keyring), or enable the Secret Service integration of KeePassXC; " + serverHint
	hintLocked = "the keyring is locked or has no default collection: unlock it (log in to the desktop session, " +
		"or unlock the login keyring in Seahorse or KeePassXC) and try again"
	hintNoAnswer = "the Secret Service did not answer: it may be waiting for you to unlock the keyring, or be " +
		"hung; unlock it, or restart gnome-keyring-daemon or KeePassXC"
	hintTimeout = "the keyring did not answer: it may be waiting for you to unlock it, or be hung; unlock it, " +
		"or restart the keyring service (gnome-keyring-daemon, KeePassXC)"
	hintUnsupported = "this operating system has no keyring mooxsync can use; " + serverHint
)

// classify maps a backend error to this package's errors. The backend's text is kept (it
// names D-Bus errors, never values); a value never reaches an error.
func classify(op, key string, err error) error {
	unavailable := func(hint string) error {
		return fmt.Errorf("%s secret %q: %w: %s (%w)", op, key, ErrUnavailable, hint, err)
	}
	switch {
	case errors.Is(err, keyring.ErrNotFound):
		return fmt.Errorf("%s secret %q: %w", op, key, ErrNotFound)
	case errors.Is(err, keyring.ErrSetDataTooBig):
		return fmt.Errorf("%s secret %q: %w", op, key, ErrTooBig)
	case errors.Is(err, keyring.ErrUnsupportedPlatform):
		return unavailable(hintUnsupported)
	}
	var de dbus.Error
	if errors.As(err, &de) {
		switch {
		case de.Name == "org.freedesktop.DBus.Error.ServiceUnknown",
			de.Name == "org.freedesktop.DBus.Error.NameHasNoOwner",
			strings.HasPrefix(de.Name, "org.freedesktop.DBus.Error.Spawn."):
			return unavailable(hintNoService)
		case de.Name == "org.freedesktop.DBus.Error.NoReply",
			de.Name == "org.freedesktop.DBus.Error.Timeout",
			de.Name == "org.freedesktop.DBus.Error.TimedOut":
			return unavailable(hintNoAnswer)
		case de.Name == "org.freedesktop.Secret.Error.IsLocked":
			return unavailable(hintLocked)
		case de.Name == "org.freedesktop.DBus.Error.NoServer",
			de.Name == "org.freedesktop.DBus.Error.Disconnected":
			return unavailable(hintBusDown)
		}
		return fmt.Errorf("%s secret %q: %w", op, key, err)
	}
	msg := err.Error()
	var opErr *net.OpError
	switch {
	case strings.Contains(msg, "failed to unlock correct collection"):
		return unavailable(hintLocked)
	case strings.Contains(msg, "couldn't determine address of session bus"):
		return unavailable(hintNoBus)
	case errors.As(err, &opErr), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT),
		strings.HasPrefix(msg, "dbus:"):
		return unavailable(hintBusDown)
	}
	return fmt.Errorf("%s secret %q: %w", op, key, err)
}

// sessionBusPreflight refuses, before go-keyring is called, to use the Secret Service when
// no D-Bus session bus can be found: go-keyring would then autolaunch a private bus and
// keyring daemon that outlive mooxsync and hold no useful keyring.
func sessionBusPreflight() error {
	switch runtime.GOOS {
	case "darwin", "windows", "ios", "android":
		return nil
	}
	return checkSessionBus(os.Getenv, fileExists, os.Getuid())
}

// checkSessionBus finds the session bus the way godbus does: DBUS_SESSION_BUS_ADDRESS, else
// /run/user/<uid>/bus or /run/user/<uid>/dbus-session.
func checkSessionBus(getenv func(string) string, exists func(string) bool, uid int) error {
	if addr := getenv("DBUS_SESSION_BUS_ADDRESS"); addr != "" && addr != "autolaunch:" {
		return nil
	}
	dir := "/run/user/" + strconv.Itoa(uid)
	if exists(dir+"/bus") || exists(dir+"/dbus-session") {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, hintNoBus)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
