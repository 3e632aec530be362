package fleet

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// resolverFunc is a Resolver from a function.
type resolverFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (f resolverFunc) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f(ctx, network, host)
}

func TestIPLookup_LookupIP(t *testing.T) {
	addrs := map[string][]netip.Addr{
		"dual.example":   {netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("203.0.113.7")},
		"v6.example":     {netip.MustParseAddr("2001:db8::2")},
		"mapped.example": {netip.MustParseAddr("::ffff:198.51.100.4")},
		"none.example":   {},
	}
	var asked []string
	r := resolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
		asked = append(asked, host)
		a, ok := addrs[host]
		if !ok {
			return nil, errors.New("no such host")
		}
		return a, nil
	})
	l := IPLookup{Resolver: r}
	for _, tc := range []struct {
		domain, want string
		wantErr      bool
	}{
		{"dual.example", "203.0.113.7", false},
		{" dual.example. ", "203.0.113.7", false},
		{"v6.example", "2001:db8::2", false},
		{"mapped.example", "198.51.100.4", false},
		{"192.0.2.1", "192.0.2.1", false},
		{"[2001:db8::9]", "2001:db8::9", false},
		{"none.example", "", true},
		{"missing.example", "", true},
		{"", "", true},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			got, err := l.LookupIP(t.Context(), tc.domain)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("LookupIP(%q) = %q, %v; want %q (error %v)", tc.domain, got, err, tc.want, tc.wantErr)
			}
		})
	}
	if len(asked) != 6 {
		t.Fatalf("the resolver was asked %v; IP literals and empty domains must not be looked up", asked)
	}

	t.Run("timeout", func(t *testing.T) {
		slow := resolverFunc(func(ctx context.Context, _, _ string) ([]netip.Addr, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		start := time.Now()
		_, err := IPLookup{Resolver: slow, Timeout: 30 * time.Millisecond}.LookupIP(t.Context(), "slow.example")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
			t.Fatalf("err = %v after %v, want a deadline after 30 ms", err, time.Since(start))
		}
	})
}
