package protocol

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
)

// MinTokenLength is the shortest sync_token or platform_token accepted.
const MinTokenLength = 32

// ErrShortToken is returned for a token under MinTokenLength characters.
var ErrShortToken = fmt.Errorf("token must be at least %d characters", MinTokenLength)

// CheckToken reports whether a token is long enough to be used as a key.
func CheckToken(token string) error {
	if len(token) < MinTokenLength {
		return ErrShortToken
	}
	return nil
}

// GenerateToken returns a new token: base64url (no padding) of 32 random bytes, 43 characters.
func GenerateToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// BootKey is K_boot = utf8(sync_token), used only for POST /api/enroll.
func BootKey(syncToken string) []byte { return []byte(syncToken) }

// ControlKey is K_ctl(P) = utf8(platform_token(P) + sync_token), the key of every
// control-plane call to P's agent.
func ControlKey(platformToken, syncToken string) []byte {
	return []byte(platformToken + syncToken)
}

// PairKey is K_pair(A->B) = HMAC-SHA256(K_ctl(B), "mooxsync/v1 pair <A> <B>"), the key of
// data deliveries from platform A (source) to platform B (target).
func PairKey(targetControlKey []byte, sourceID, targetID int64) []byte {
	m := hmac.New(sha256.New, targetControlKey)
	m.Write([]byte("mooxsync/v1 pair " + strconv.FormatInt(sourceID, 10) + " " + strconv.FormatInt(targetID, 10)))
	return m.Sum(nil)
}

// EncodeKey renders a raw key as it travels in a Peer (standard base64, padded).
func EncodeKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// DecodeKey parses a Peer key.
func DecodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("peer key is not standard base64: %w", err)
	}
	if len(k) != sha256.Size {
		return nil, fmt.Errorf("peer key must be %d bytes, got %d", sha256.Size, len(k))
	}
	return k, nil
}

// Fingerprint is the pinned identity of an agent's TLS certificate:
// "sha256:" + lower-case hex of SHA-256 over the leaf certificate's DER bytes.
func Fingerprint(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return "sha256:" + hex.EncodeToString(sum[:])
}
