package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// ErrFingerprintChanged matches a *FingerprintMismatchError with errors.Is: the agent
// presented a TLS certificate other than the pinned one.
var ErrFingerprintChanged = errors.New("agent TLS fingerprint changed")

// ErrNotPinned is returned for an https agent URL without a pinned fingerprint: the
// control center talks to such an agent only through Probe until an admin has confirmed
// the fingerprint Probe saw.
var ErrNotPinned = errors.New("agent TLS fingerprint not pinned")

// ErrNoCertificate is returned when an https agent presents no certificate at all.
var ErrNoCertificate = errors.New("agent presented no TLS certificate")

// FingerprintMismatchError is returned, before any request is sent, when an agent presents
// a certificate whose fingerprint is not the pinned one. It matches ErrFingerprintChanged.
type FingerprintMismatchError struct {
	// Pinned is the fingerprint the catalog holds, Seen the one the agent presented.
	Pinned string
	Seen   string
}

// Error names both fingerprints.
func (e *FingerprintMismatchError) Error() string {
	return fmt.Sprintf("agent TLS fingerprint changed: pinned %s, presented %s", e.Pinned, e.Seen)
}

// Is matches ErrFingerprintChanged.
func (e *FingerprintMismatchError) Is(target error) bool { return target == ErrFingerprintChanged }

// CheckFingerprint reports whether fp has the form of protocol.Fingerprint:
// "sha256:" followed by 64 lower-case hex digits.
func CheckFingerprint(fp string) error {
	hexPart, ok := strings.CutPrefix(fp, "sha256:")
	if !ok || len(hexPart) != 64 {
		return fmt.Errorf("fingerprint %q: want sha256: followed by 64 lower-case hex digits", fp)
	}
	for i := 0; i < len(hexPart); i++ {
		c := hexPart[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("fingerprint %q: want sha256: followed by 64 lower-case hex digits", fp)
		}
	}
	return nil
}

// pinnedTLS returns a TLS configuration that skips CA verification and instead accepts
// exactly the leaf certificate whose fingerprint is pinned. When pinned is empty it accepts
// any certificate and hands the fingerprint seen to seen (trust on first use); seen may be
// nil.
func pinnedTLS(pinned string, seen func(string)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The certificate chain is not checked against CAs: agents serve self-signed
		// certificates, and VerifyConnection pins the exact leaf instead.
		InsecureSkipVerify: true, //nolint:gosec // replaced by fingerprint pinning below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrNoCertificate
			}
			fp := protocol.Fingerprint(cs.PeerCertificates[0].Raw)
			if seen != nil {
				seen(fp)
			}
			if pinned != "" && fp != pinned {
				return &FingerprintMismatchError{Pinned: pinned, Seen: fp}
			}
			return nil
		},
	}
}

// newTransport returns the HTTP transport of one agent's client.
func newTransport(tlsConfig *tls.Config) *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Probe contacts an agent that has no pinned fingerprint yet (trust on first use): it
// calls GET /api/health, accepting whatever certificate the agent presents, and returns the
// fingerprint of that certificate for the admin to confirm, with the health answer. For a
// plain http:// URL the fingerprint is empty. Nothing secret is sent.
func Probe(ctx context.Context, agentURL string) (fingerprint string, health protocol.Health, err error) {
	base, tlsURL, err := parseAgentURL(agentURL)
	if err != nil {
		return "", protocol.Health{}, err
	}
	var (
		mu   sync.Mutex
		seen string
	)
	c := newRawClient(base, pinnedTLS("", func(fp string) {
		mu.Lock()
		seen = fp
		mu.Unlock()
	}), defaultTimeout, 0, 0)
	defer c.close()
	err = c.call(ctx, request{method: http.MethodGet, uri: "/api/health"}, &health)
	mu.Lock()
	fingerprint = seen
	mu.Unlock()
	if err != nil {
		return fingerprint, protocol.Health{}, err
	}
	if tlsURL && fingerprint == "" {
		return "", protocol.Health{}, ErrNoCertificate
	}
	return fingerprint, health, nil
}
