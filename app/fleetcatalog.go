package app

import (
	"context"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// fleetCatalog is the catalog as package fleet needs it: *catalog.Store plus the fleet
// snapshot and the push history in fleet's types.
type fleetCatalog struct {
	*catalog.Store
}

var _ fleet.Catalog = fleetCatalog{}

// Fleet reads a consistent snapshot of the catalog (catalog.Store.Snapshot).
func (c fleetCatalog) Fleet(ctx context.Context) (fleet.Fleet, error) {
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return fleet.Fleet{}, err
	}
	return toFleet(snap), nil
}

// toFleet converts a catalog snapshot to fleet's view of it.
func toFleet(snap catalog.Snapshot) fleet.Fleet {
	f := fleet.Fleet{
		Revision:  snap.Revision,
		Platforms: make([]fleet.FleetPlatform, 0, len(snap.Platforms)),
		Syncs:     make([]protocol.Sync, 0, len(snap.Syncs)),
	}
	for _, p := range snap.Platforms {
		fp := fleet.FleetPlatform{Platform: p.Protocol(), Enrolled: p.Enrolled()}
		if p.TLSFingerprint != nil {
			fp.TLSFingerprint = *p.TLSFingerprint
		}
		f.Platforms = append(f.Platforms, fp)
	}
	for _, s := range snap.Syncs {
		f.Syncs = append(f.Syncs, s.Protocol())
	}
	return f
}

// RecordResult stores one agent's result of Sync Platforms in the push history.
func (c fleetCatalog) RecordResult(ctx context.Context, r fleet.Result) error {
	_, err := c.RecordPush(ctx, catalog.Push{
		PlatformID: r.PlatformID, Revision: r.Revision, Result: r.Outcome, Code: r.Code,
		Message: r.Message, DurationMS: r.DurationMS,
	})
	return err
}
