package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DefaultLookupTimeout bounds a domain look-up when the caller sets none.
const DefaultLookupTimeout = 5 * time.Second

// Resolver resolves host names; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ErrNoAddress is returned when a domain resolves to no address.
var ErrNoAddress = errors.New("domain has no IP address")

// IPLookup finds the IP address of a platform's domain, for the platform form.
type IPLookup struct {
	// Resolver answers the look-ups (default net.DefaultResolver).
	Resolver Resolver
	// Timeout bounds one look-up (default DefaultLookupTimeout).
	Timeout time.Duration
}

// LookupIP returns the IP address of domain with the default resolver and timeout.
func LookupIP(ctx context.Context, domain string) (string, error) {
	return IPLookup{}.LookupIP(ctx, domain)
}

// LookupIP returns the IP address of domain: its first IPv4 address when it has one, else
// its first IPv6 address. An IP literal is returned as it is.
func (l IPLookup) LookupIP(ctx context.Context, domain string) (string, error) {
	host := strings.TrimSuffix(strings.TrimSpace(domain), ".")
	if host == "" {
		return "", errors.New("look up IP address: empty domain")
	}
	if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return addr.Unmap().String(), nil
	}
	r := l.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultLookupTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return "", fmt.Errorf("look up IP address of %s: %w", host, err)
	}
	var v6 netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			return a.String(), nil
		}
		if !v6.IsValid() {
			v6 = a
		}
	}
	if v6.IsValid() {
		return v6.WithZone("").String(), nil
	}
	return "", fmt.Errorf("look up IP address of %s: %w", host, ErrNoAddress)
}
