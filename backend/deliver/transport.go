package deliver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// ErrFingerprintMismatch matches a *FingerprintError with errors.Is.
var ErrFingerprintMismatch = errors.New("peer TLS fingerprint mismatch")

// FingerprintError is returned when a peer presents a certificate other than the pinned one;
// nothing is sent to it.
type FingerprintError struct {
	Addr   string
	Pinned string
	Seen   string
}

// Error names the address and both fingerprints.
func (e *FingerprintError) Error() string {
	return fmt.Sprintf("peer %s presented TLS fingerprint %s, pinned %s", e.Addr, e.Seen, e.Pinned)
}

// Is matches ErrFingerprintMismatch.
func (e *FingerprintError) Is(target error) bool { return target == ErrFingerprintMismatch }

// pins maps the host:port of every https peer to its pinned certificate fingerprint.
type pins struct {
	mu     sync.RWMutex
	byAddr map[string]string
}

func (p *pins) get(addr string) string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.byAddr[addr]
}

// replace installs a new set of pins and reports whether any pin changed or went away.
func (p *pins) replace(next map[string]string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	for a, fp := range p.byAddr {
		if next[a] != fp {
			changed = true
		}
	}
	p.byAddr = next
	return changed
}

// peerAddr returns the host:port a URL connects to, as http.Transport names it.
func peerAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// newTransport returns the one HTTP transport all senders share: keep-alive connections,
// several per peer, no proxy, no response compression, and for https a TLS handshake that
// accepts exactly the leaf certificate pinned for the address (no CA check: agents serve
// self-signed certificates).
func newTransport(p *pins) *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext: dialer.DialContext,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			pinned := p.get(addr)
			if pinned == "" {
				return nil, fmt.Errorf("no TLS fingerprint pinned for peer %s", addr)
			}
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			raw, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			conn := tls.Client(raw, &tls.Config{
				MinVersion: tls.VersionTLS12,
				ServerName: host,
				// Agents serve self-signed certificates: the chain is not checked against CAs,
				// VerifyPeerCertificate pins the exact leaf instead.
				InsecureSkipVerify: true, //nolint:gosec // replaced by fingerprint pinning
				VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
					if len(rawCerts) == 0 {
						return fmt.Errorf("peer %s presented no TLS certificate", addr)
					}
					if seen := protocol.Fingerprint(rawCerts[0]); seen != pinned {
						return &FingerprintError{Addr: addr, Pinned: pinned, Seen: seen}
					}
					return nil
				},
			})
			hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := conn.HandshakeContext(hctx); err != nil {
				_ = raw.Close()
				return nil, err
			}
			return conn, nil
		},
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0,
		DisableCompression:    true,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        16 << 10,
	}
}
