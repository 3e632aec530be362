// Package secrets keeps the control center's tokens: the fleet's sync token and one token
// per platform. They live in the OS keyring (Keyring) under service "mooxsync"; never in
// the catalog, in logs or in error messages. Memory is for tests; File is a last resort for
// web mode on a server without a Secret Service, used only after an explicit opt-in.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Service is the keyring service the control center's secrets are stored under.
const Service = "mooxsync"

// SyncTokenKey is the key of the fleet's sync token (Moox SYNC_TOKEN).
const SyncTokenKey = "sync-token"

// PlatformKey returns the key of a platform's token: "platform/<id>".
func PlatformKey(id int64) string { return "platform/" + strconv.FormatInt(id, 10) }

// Sentinel errors of every Store. Compare with errors.Is. No error of this package ever
// carries a secret value; keys are not secret and do appear.
var (
	// ErrNotFound means no secret is stored under the key.
	ErrNotFound = errors.New("secret not found")
	// ErrUnavailable means the secret store cannot be used now: no keyring, no D-Bus
	// session, a locked collection, or no answer in time. The error's text says what to
	// install or run.
	ErrUnavailable = errors.New("secret store unavailable")
	// ErrTimeout means the keyring did not answer in time; it also matches ErrUnavailable.
	ErrTimeout = errors.New("keyring timed out")
	// ErrInvalidKey means a key is empty, too long, or has spaces or control characters.
	ErrInvalidKey = errors.New("invalid secret key")
	// ErrTooBig means the keyring refused a value as too large.
	ErrTooBig = errors.New("secret too big for the keyring")
	// ErrInsecureFile means a File store's file can be read by other users.
	ErrInsecureFile = errors.New("secrets file is accessible to other users")
)

// Store keeps secrets by key. Implementations are safe for concurrent use.
type Store interface {
	// Get returns the secret stored under key, or ErrNotFound.
	Get(ctx context.Context, key string) (string, error)
	// Set stores value under key, replacing any previous one.
	Set(ctx context.Context, key, value string) error
	// Delete removes the secret stored under key, or returns ErrNotFound.
	Delete(ctx context.Context, key string) error
}

const maxKeyLen = 255

// begin checks what every Store call checks first: a valid key and a live context. Errors
// read `<op> secret "<key>": …`.
func begin(ctx context.Context, op, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s secret %q: %w", op, key, err)
	}
	return nil
}

// checkKey validates a key: 1 to 255 characters, no white space or control characters.
func checkKey(key string) error {
	if key == "" || len(key) > maxKeyLen || strings.IndexFunc(key, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}) >= 0 {
		return fmt.Errorf("%w %q: want 1 to %d characters without spaces", ErrInvalidKey, key, maxKeyLen)
	}
	return nil
}
