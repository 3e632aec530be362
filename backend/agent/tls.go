package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// Certificate file names inside the state directory.
const (
	CertFileName = "tls/cert.pem"
	KeyFileName  = "tls/key.pem"
)

// certValidity is how long a generated certificate is valid. The control center pins it by
// fingerprint (trust on first use), so its expiry protects nothing and would only break
// the fleet.
const certValidity = 10 * 365 * 24 * time.Hour

// CertPaths returns where the agent keeps its own certificate and key in the state directory.
func CertPaths(stateDir string) (certFile, keyFile string) {
	return filepath.Join(stateDir, CertFileName), filepath.Join(stateDir, KeyFileName)
}

// EnsureCertificate returns the agent's own certificate in stateDir, generating a
// self-signed one for hosts when there is none yet.
func EnsureCertificate(stateDir string, hosts []string) (certFile, keyFile string, created bool, err error) {
	certFile, keyFile = CertPaths(stateDir)
	_, cerr := os.Stat(certFile)
	_, kerr := os.Stat(keyFile)
	if cerr == nil && kerr == nil {
		return certFile, keyFile, false, nil
	}
	if !errors.Is(cerr, os.ErrNotExist) && cerr != nil {
		return "", "", false, fmt.Errorf("certificate: %w", cerr)
	}
	if err := GenerateCertificate(certFile, keyFile, hosts, time.Now()); err != nil {
		return "", "", false, err
	}
	return certFile, keyFile, true, nil
}

// CertificateHosts is the hostname, localhost and the loopback addresses, plus extra.
func CertificateHosts(extra []string) []string {
	hosts := []string{}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	hosts = append(hosts, "localhost", "127.0.0.1", "::1")
	for _, h := range extra {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// GenerateCertificate writes a self-signed ECDSA P-256 server certificate for hosts (DNS
// names and IP addresses) to certFile, and its key to keyFile with mode 0600.
func GenerateCertificate(certFile, keyFile string, hosts []string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("generate serial: %w", err)
	}
	cn := "mooxsync-agent"
	if len(hosts) > 0 {
		cn = hosts[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"mooxsync agent"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// LoadCertificate loads a certificate and key pair and returns it with the fingerprint of
// its leaf (protocol.Fingerprint).
func LoadCertificate(certFile, keyFile string) (tls.Certificate, string, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("load certificate: %w", err)
	}
	return cert, protocol.Fingerprint(cert.Certificate[0]), nil
}

// CertificateFingerprint returns the fingerprint of the first certificate in a PEM file.
func CertificateFingerprint(certFile string) (string, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return "", fmt.Errorf("read certificate: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	return protocol.Fingerprint(block.Bytes), nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
