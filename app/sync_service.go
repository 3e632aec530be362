package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// SyncService manages the syncs of the catalog and asks agents about their models.
type SyncService struct {
	ctx     context.Context
	log     *slog.Logger
	catalog *catalog.Store
	secrets secrets.Store
	// client is the template of the agent clients.
	client fleet.ClientOptions
}

func (s *SyncService) fail(op string, err error) error {
	return failure(s.log, "SyncService."+op, err)
}

// List returns the syncs from a source platform to a target platform, ordered by id; 0
// for either means any platform.
func (s *SyncService) List(sourcePlatformID, targetPlatformID int64) ([]Sync, error) {
	syncs, err := s.catalog.Syncs(s.ctx, catalog.SyncFilter{SourcePlatformID: sourcePlatformID, TargetPlatformID: targetPlatformID})
	if err != nil {
		return nil, s.fail("List", err)
	}
	out := make([]Sync, 0, len(syncs))
	for _, sy := range syncs {
		out = append(out, syncOut(sy))
	}
	return out, nil
}

// Save creates the sync (ID 0) or updates its editable fields, and returns it as stored
// with its generated title.
func (s *SyncService) Save(in SyncInput) (Sync, error) {
	var (
		sy  catalog.Sync
		err error
	)
	if in.ID == 0 {
		sy, err = s.catalog.CreateSync(s.ctx, in.catalog(catalog.Sync{}))
	} else {
		var old catalog.Sync
		if old, err = s.catalog.Sync(s.ctx, in.ID); err == nil {
			sy, err = s.catalog.UpdateSync(s.ctx, in.catalog(old))
		}
	}
	if err != nil {
		return Sync{}, s.fail("Save", err)
	}
	return syncOut(sy), nil
}

// Delete deletes a sync.
func (s *SyncService) Delete(id int64) error {
	return s.fail("Delete", s.catalog.DeleteSync(s.ctx, id))
}

// Models lists the tables of the platform's application database, live from its agent.
func (s *SyncService) Models(platformID int64) ([]protocol.Model, error) {
	models, err := s.models(s.ctx, platformID)
	if err != nil {
		return nil, s.fail("Models", err)
	}
	out := make([]protocol.Model, 0, len(models))
	for _, m := range models {
		out = append(out, modelOut(m))
	}
	return out, nil
}

// models asks the agent of a platform for its models.
func (s *SyncService) models(ctx context.Context, platformID int64) ([]protocol.Model, error) {
	c, err := s.agent(platformID)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	models, err := c.Models(ctx)
	if err != nil {
		return nil, s.observe(platformID, err)
	}
	return models, nil
}

// Capabilities returns the transformers and sync handlers registered on the platform's
// agent, live from it.
func (s *SyncService) Capabilities(platformID int64) (Capabilities, error) {
	c, err := s.agent(platformID)
	if err != nil {
		return Capabilities{}, s.fail("Capabilities", err)
	}
	defer c.Close()
	caps, err := c.Capabilities(s.ctx)
	if err != nil {
		return Capabilities{}, s.fail("Capabilities", s.observe(platformID, err))
	}
	return Capabilities{Transformers: caps.Transformers, Handlers: caps.Handlers}, nil
}

// Relations returns the platforms a record of the platform's model relates to
// (model_platform, Moox's platform relations), key being the value of its unique
// identifier field (its ulid, slug, ...), live from the platform's agent.
func (s *SyncService) Relations(platformID int64, model, key string) ([]int64, error) {
	if err := checkRecord(model, key); err != nil {
		return nil, err
	}
	c, err := s.agent(platformID)
	if err != nil {
		return nil, s.fail("Relations", err)
	}
	defer c.Close()
	rel, err := c.Relations(s.ctx, strings.TrimSpace(model), strings.TrimSpace(key))
	if err != nil {
		return nil, s.fail("Relations", s.observe(platformID, err))
	}
	return nonNilIDs(rel.PlatformIDs), nil
}

// SetRelations rewrites the platforms a record relates to on the platform's agent, which
// then delivers the record to the platforms it gained and deletes it on those it lost (for
// syncs that use platform relations), and returns them as stored.
func (s *SyncService) SetRelations(platformID int64, model, key string, platformIDs []int64) ([]int64, error) {
	if err := checkRecord(model, key); err != nil {
		return nil, err
	}
	for _, id := range platformIDs {
		if _, err := s.catalog.Platform(s.ctx, id); err != nil {
			if errors.Is(err, catalog.ErrNotFound) {
				return nil, fieldError("platform_ids", fmt.Sprintf("platform %d does not exist", id))
			}
			return nil, s.fail("SetRelations", err)
		}
	}
	c, err := s.agent(platformID)
	if err != nil {
		return nil, s.fail("SetRelations", err)
	}
	defer c.Close()
	rel, err := c.PutRelations(s.ctx, strings.TrimSpace(model), strings.TrimSpace(key),
		protocol.Relations{PlatformIDs: nonNilIDs(platformIDs)})
	if err != nil {
		return nil, s.fail("SetRelations", s.observe(platformID, err))
	}
	return nonNilIDs(rel.PlatformIDs), nil
}

// checkRecord checks the model and key of a relations look-up.
func checkRecord(model, key string) error {
	if strings.TrimSpace(model) == "" {
		return fieldError("model", "choose a model")
	}
	if strings.TrimSpace(key) == "" {
		return fieldError("key", "enter the record's identifier (its ulid, uuid, slug, ...)")
	}
	return nil
}

func nonNilIDs(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}

// Compatibility compares the source model with the target model, both read live from
// their agents: columns missing on the target, extra columns on the target, columns whose
// types differ (compared across SQL dialects), and the key field that matches records.
func (s *SyncService) Compatibility(sourcePlatformID int64, sourceModel string, targetPlatformID int64, targetModel string) (CompatReport, error) {
	type answer struct {
		models []protocol.Model
		err    error
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	srcCh, dstCh := make(chan answer, 1), make(chan answer, 1)
	go func() { m, err := s.models(ctx, sourcePlatformID); srcCh <- answer{m, err} }()
	go func() { m, err := s.models(ctx, targetPlatformID); dstCh <- answer{m, err} }()
	src, dst := <-srcCh, <-dstCh
	if src.err != nil {
		return CompatReport{}, s.fail("Compatibility", fmt.Errorf("source platform %d: %w", sourcePlatformID, src.err))
	}
	if dst.err != nil {
		return CompatReport{}, s.fail("Compatibility", fmt.Errorf("target platform %d: %w", targetPlatformID, dst.err))
	}
	sm, ok := findModel(src.models, sourceModel)
	if !ok {
		return CompatReport{}, fieldError("source_model", fmt.Sprintf("platform %d has no model %q", sourcePlatformID, sourceModel))
	}
	tm, ok := findModel(dst.models, targetModel)
	if !ok {
		return CompatReport{}, fieldError("target_model", fmt.Sprintf("platform %d has no model %q", targetPlatformID, targetModel))
	}
	return compareModels(sm, tm), nil
}

// Reconcile starts a reconciliation run (SyncBackupJob) of the sync now on its source
// platform's agent and returns the run's id. A dry run only reports what it would repair.
func (s *SyncService) Reconcile(syncID int64, dryRun bool) (string, error) {
	sy, err := s.catalog.Sync(s.ctx, syncID)
	if err != nil {
		return "", s.fail("Reconcile", err)
	}
	c, err := s.agent(sy.SourcePlatformID)
	if err != nil {
		return "", s.fail("Reconcile", err)
	}
	defer c.Close()
	uri := "/api/syncs/" + protocol.FormatID(syncID) + "/reconcile"
	if dryRun {
		uri += "?dry_run=true"
	}
	var out protocol.ReconcileStarted
	if err := c.Call(s.ctx, http.MethodPost, uri, nil, &out); err != nil {
		return "", s.fail("Reconcile", s.observe(sy.SourcePlatformID, err))
	}
	if out.RunID == "" {
		return "", s.fail("Reconcile", fmt.Errorf("%w: reconcile answer has no run_id", fleet.ErrBadResponse))
	}
	return out.RunID, nil
}

// ReconcileRuns returns the sync's reconciliation runs (initial load, by hand, every
// interval), newest first, as its source platform's agent keeps them.
func (s *SyncService) ReconcileRuns(syncID int64) ([]agent.ReconcileRun, error) {
	sy, err := s.catalog.Sync(s.ctx, syncID)
	if err != nil {
		return nil, s.fail("ReconcileRuns", err)
	}
	c, err := s.agent(sy.SourcePlatformID)
	if err != nil {
		return nil, s.fail("ReconcileRuns", err)
	}
	defer c.Close()
	var out agent.ReconcileRuns
	if err := c.Call(s.ctx, http.MethodGet, "/api/syncs/"+protocol.FormatID(syncID)+"/reconcile", nil, &out); err != nil {
		return nil, s.fail("ReconcileRuns", s.observe(sy.SourcePlatformID, err))
	}
	if out.Runs == nil {
		out.Runs = []agent.ReconcileRun{}
	}
	return out.Runs, nil
}

// agent returns a client for the platform's agent with the tokens from the secret store.
func (s *SyncService) agent(platformID int64) (*fleet.Client, error) {
	return agentClient(s.ctx, s.catalog, s.secrets, s.client, platformID)
}

// observe records a certificate other than the pinned one as the platform's pending
// fingerprint, for an admin to accept, and returns err.
func (s *SyncService) observe(platformID int64, err error) error {
	var fm *fleet.FingerprintMismatchError
	if errors.As(err, &fm) {
		if perr := s.catalog.PinFingerprint(context.WithoutCancel(s.ctx), platformID, fm.Seen); perr != nil &&
			!errors.Is(perr, catalog.ErrFingerprintChanged) {
			s.log.Warn("record the changed fingerprint", "platform_id", platformID, "err", perr)
		}
	}
	return err
}

// agentClient builds a client for the agent of platform id from the catalog and the
// secret store. The caller closes it.
func agentClient(ctx context.Context, cat *catalog.Store, sec secrets.Store, tmpl fleet.ClientOptions, id int64) (*fleet.Client, error) {
	p, err := cat.Platform(ctx, id)
	if err != nil {
		return nil, err
	}
	syncToken, err := sec.Get(ctx, secrets.SyncTokenKey)
	if errors.Is(err, secrets.ErrNotFound) {
		return nil, newError(CodeMissingToken, "there is no sync token yet: generate one in the settings")
	}
	if err != nil {
		return nil, err
	}
	token, err := sec.Get(ctx, secrets.PlatformKey(id))
	if errors.Is(err, secrets.ErrNotFound) {
		return nil, newError(CodeMissingToken, fmt.Sprintf("platform #%d %s has no token: set or generate one", id, p.Name))
	}
	if err != nil {
		return nil, err
	}
	opts := tmpl
	opts.URL, opts.SyncToken, opts.PlatformToken = p.AgentURL, syncToken, token
	if p.TLSFingerprint != nil {
		opts.Fingerprint = *p.TLSFingerprint
	}
	c, err := fleet.NewClient(opts)
	if err != nil {
		if errors.Is(err, fleet.ErrNotPinned) || errors.Is(err, protocol.ErrShortToken) {
			return nil, err
		}
		return nil, fmt.Errorf("client for platform %d: %w", id, err)
	}
	return c, nil
}

// findModel finds a model by name, exactly or else ignoring case.
func findModel(models []protocol.Model, name string) (protocol.Model, bool) {
	name = strings.TrimSpace(name)
	for _, m := range models {
		if m.Name == name {
			return m, true
		}
	}
	for _, m := range models {
		if strings.EqualFold(m.Name, name) {
			return m, true
		}
	}
	return protocol.Model{}, false
}
