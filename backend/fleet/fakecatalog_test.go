package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// fakeCatalog is an in-memory Catalog with the semantics of catalog.Store.
type fakeCatalog struct {
	mu       sync.Mutex
	fleet    Fleet
	results  []Result
	acked    map[int64]int64
	pending  map[int64]string
	fleetErr error
}

var _ Catalog = (*fakeCatalog)(nil)

func (c *fakeCatalog) Fleet(context.Context) (Fleet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fleetErr != nil {
		return Fleet{}, c.fleetErr
	}
	f := c.fleet
	f.Platforms = slices.Clone(f.Platforms)
	f.Syncs = slices.Clone(f.Syncs)
	return f, nil
}

func (c *fakeCatalog) platform(id int64) *FleetPlatform {
	for i := range c.fleet.Platforms {
		if c.fleet.Platforms[i].ID == id {
			return &c.fleet.Platforms[i]
		}
	}
	return nil
}

func (c *fakeCatalog) PinFingerprint(_ context.Context, id int64, fp string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.platform(id)
	switch {
	case p == nil:
		return errors.New("not found")
	case p.TLSFingerprint == "":
		p.TLSFingerprint = fp
		c.fleet.Revision++
	case p.TLSFingerprint != fp:
		c.pending[id] = fp
		return fmt.Errorf("platform %d: fingerprint changed", id)
	}
	return nil
}

func (c *fakeCatalog) MarkEnrolled(_ context.Context, id int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.platform(id); p != nil {
		p.Enrolled = true
		return nil
	}
	return errors.New("not found")
}

func (c *fakeCatalog) SetAcked(_ context.Context, id, rev int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acked[id] = rev
	return nil
}

func (c *fakeCatalog) RecordResult(_ context.Context, r Result) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.results = append(c.results, r)
	return nil
}

func (c *fakeCatalog) BumpRevision(context.Context) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fleet.Revision++
	return c.fleet.Revision, nil
}

func (c *fakeCatalog) revision() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fleet.Revision
}

// testFleet is a fleet of fake agents with its catalog and keyring.
type testFleet struct {
	agents  []*fakeAgent
	catalog *fakeCatalog
	secrets *secrets.Memory
}

func (tf *testFleet) agent(id int64) *fakeAgent { return tf.agents[id-1] }

// newTestFleet starts n fake agents (platform ids 1..n, pinned when served over TLS), with
// a catalog holding a ring of enabled syncs i -> i+1 (posts) and, for every i, a disabled
// sync i -> i+2 (pages), and a keyring holding every token.
func newTestFleet(tb testing.TB, n int, tlsServer bool) *testFleet {
	tb.Helper()
	tf := &testFleet{
		catalog: &fakeCatalog{acked: map[int64]int64{}, pending: map[int64]string{}},
		secrets: secrets.NewMemory(),
	}
	ctx := context.Background()
	if err := tf.secrets.Set(ctx, secrets.SyncTokenKey, testSyncToken); err != nil {
		tb.Fatal(err)
	}
	f := Fleet{Revision: 10}
	for i := 1; i <= n; i++ {
		id := int64(i)
		a := newFakeAgent(tb, testSyncToken, tlsServer)
		tf.agents = append(tf.agents, a)
		f.Platforms = append(f.Platforms, FleetPlatform{
			Platform: testPlatform(id, a.URL()), TLSFingerprint: a.Fingerprint(),
		})
		if err := tf.secrets.Set(ctx, secrets.PlatformKey(id), testToken(id)); err != nil {
			tb.Fatal(err)
		}
	}
	if n > 1 {
		next := func(i, d int) int64 { return int64((i-1+d)%n + 1) }
		for i := 1; i <= n; i++ {
			f.Syncs = append(f.Syncs, protocol.Sync{
				ID: int64(i), Status: true, Title: "posts", SourcePlatformID: int64(i), SourceModel: "posts",
				TargetPlatformID: next(i, 1), TargetModel: "posts", IfExists: protocol.IfExistsUpdate,
				SyncAllFields: true, Interval: 60,
			}, protocol.Sync{
				ID: int64(1000 + i), Status: false, Title: "pages", SourcePlatformID: int64(i), SourceModel: "pages",
				TargetPlatformID: next(i, 2), TargetModel: "pages", IfExists: protocol.IfExistsUpdate,
				SyncAllFields: true, Interval: 60,
			})
		}
	}
	tf.catalog.fleet = f
	return tf
}
