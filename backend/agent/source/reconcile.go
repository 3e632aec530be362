package source

import (
	"context"

	"github.com/mooxsync/mooxsync/backend/apply"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/reconcile"
)

// target returns the reconcile.Target over the application database, built once.
func (s *Source) target() *reconcile.Target {
	s.targetOnce.Do(func() {
		s.tgt = reconcile.NewTarget(s.app, apply.Config{UniqueIdentifierFields: s.cfg.UniqueIdentifierFields})
	})
	return s.tgt
}

// ServeReconcile answers a data-plane reconcile request (endpoint reconcile.EndpointHashes,
// …) for sync sy, whose target is this platform; the caller verified and authorised it.
func (s *Source) ServeReconcile(ctx context.Context, sy protocol.Sync, endpoint string, body []byte) ([]byte, error) {
	return s.target().Serve(ctx, sy, endpoint, body)
}

// Reconcile runs one reconciliation of sync sy, whose source is this platform (self): it
// compares through the target agent's reconcile endpoints and sends the repairs as signed
// batches over the sync's delivery transport, transformed as the sender transforms.
func (s *Source) Reconcile(ctx context.Context, sy protocol.Sync, self int64, dryRun bool,
	progress func(reconcile.Progress)) (reconcile.Report, error) {
	tr, err := s.mgr.Transformer(sy.ID)
	if err != nil {
		return reconcile.Report{SyncID: sy.ID, DryRun: dryRun, Errors: []string{err.Error()}}, err
	}
	cfg := apply.Config{UniqueIdentifierFields: s.cfg.UniqueIdentifierFields}
	src, err := reconcile.NewSource(ctx, s.app, sy, cfg, tr)
	if err != nil {
		return reconcile.Report{SyncID: sy.ID, DryRun: dryRun, Errors: []string{err.Error()}}, err
	}
	peer := reconcile.ClientPeer{Post: func(ctx context.Context, endpoint string, body []byte) ([]byte, error) {
		return s.mgr.PostSigned(ctx, sy.ID, endpoint, body)
	}}
	opts := reconcile.Options{DryRun: dryRun, OriginPlatformID: self, Progress: progress,
		Repair: reconcile.RepairFunc(func(ctx context.Context, changes []protocol.Change) error {
			return s.mgr.SendRepairs(ctx, sy.ID, changes)
		})}
	return reconcile.Run(ctx, src, peer, opts)
}
