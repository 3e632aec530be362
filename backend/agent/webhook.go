package agent

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// webhook answers POST {webhook_path} (SyncWebhook): it verifies a data delivery with
// K_pair(sender->self) (during a token rotation and its grace, derived from either token), authorises it against the state in force, checks its models and
// columns, and stores it durably in the inbox before answering 202. A rejected delivery
// writes nothing.
func (a *Agent) webhook(w http.ResponseWriter, r *http.Request, body []byte) error {
	if a.opts.WebhookDisabled {
		return protocol.Errorf(protocol.CodeNotFound, "no such endpoint")
	}
	self, sender, h, err := a.verifyDataPlane(r, body)
	if err != nil {
		return err
	}
	batch, err := protocol.DecodeBatch(body)
	if err != nil {
		return err
	}
	if batch.SourcePlatformID != sender {
		return protocol.Errorf(protocol.CodeUnauthorized, "source_platform_id %d is not the sender %d",
			batch.SourcePlatformID, sender).WithStatus(http.StatusForbidden)
	}
	if batch.BatchID != h.ID {
		return protocol.Errorf(protocol.CodeBadRequest, "webhook-id must equal batch_id")
	}

	// A batch stored before is a duplicate whatever changed since: it is not applied again.
	if prev, err := a.store.LookupBatch(r.Context(), batch.BatchID); err == nil {
		return a.duplicate(w, prev, batch)
	} else if !errors.Is(err, state.ErrNotFound) {
		return err
	}

	sync, ok := a.findSync(batch.SyncID)
	forbidden := func(format string, args ...any) error {
		return protocol.Errorf(protocol.CodeUnauthorized, format, args...).WithStatus(http.StatusForbidden)
	}
	switch {
	case !ok:
		return forbidden("sync %d does not exist on this platform", batch.SyncID)
	case !sync.Status:
		return forbidden("sync %d is disabled", batch.SyncID)
	case sync.SourcePlatformID != sender:
		return forbidden("platform %d is not the source of sync %d", sender, batch.SyncID)
	case sync.TargetPlatformID != self:
		return forbidden("this platform is not the target of sync %d", batch.SyncID)
	}
	if own, _ := a.ownPlatform(); own.Locked || own.ReadOnly {
		return protocol.Errorf(protocol.CodeLocked, "platform %d is locked or read-only", self)
	}
	for i, c := range batch.Changes {
		if c.Model != sync.SourceModel {
			return protocol.Errorf(protocol.CodeUnknownModel, "change %d: sync %d does not carry model %q",
				i, sync.ID, c.Model)
		}
	}
	if err := a.opts.Applier.CheckBatch(r.Context(), sync, batch); err != nil {
		return err
	}

	now := a.opts.Now()
	rec := state.Batch{
		BatchID:          batch.BatchID,
		SyncID:           batch.SyncID,
		SourcePlatformID: sender,
		Count:            len(batch.Changes),
		Body:             body,
		ReceivedAt:       now,
		OldestChangeAt:   now,
	}
	for i, c := range batch.Changes {
		if i == 0 || c.Seq < rec.FirstSeq {
			rec.FirstSeq = c.Seq
		}
		if i == 0 || c.Seq > rec.LastSeq {
			rec.LastSeq = c.Seq
		}
		if t, err := time.Parse(time.RFC3339Nano, c.ChangedAt); err == nil && t.Before(rec.OldestChangeAt) {
			rec.OldestChangeAt = t
		}
	}
	added, prev, err := a.store.AddBatch(r.Context(), rec)
	if err != nil {
		return err
	}
	if !added {
		return a.duplicate(w, prev, batch)
	}
	a.log.Info("batch accepted", "batch_id", batch.BatchID, "sync_id", batch.SyncID, "source_platform_id", sender,
		"count", rec.Count)
	a.decoded.put(batch)
	a.workers.notify(batch.SyncID)
	protocol.WriteJSON(w, http.StatusAccepted, protocol.Accepted{Status: "accepted", BatchID: batch.BatchID, Count: rec.Count})
	return nil
}

// duplicate answers a batch whose id is stored already: 200 duplicate when the same sender
// sent it for the same sync, 409 conflict otherwise.
func (a *Agent) duplicate(w http.ResponseWriter, prev state.Batch, batch *protocol.Batch) error {
	if prev.SourcePlatformID != batch.SourcePlatformID || prev.SyncID != batch.SyncID {
		return protocol.Errorf(protocol.CodeConflict, "batch id %s is taken by another delivery", batch.BatchID)
	}
	a.log.Info("duplicate batch", "batch_id", batch.BatchID, "sync_id", batch.SyncID, "status", prev.Status)
	protocol.WriteJSON(w, http.StatusOK, protocol.Duplicate{Status: "duplicate"})
	return nil
}

// verifyDataPlane checks a data-plane request (a delivery or a reconcile request from a
// source): this agent is enrolled, x-mooxsync-platform names the sender, and the body is
// signed with K_pair(sender->self) (during a token rotation and its grace, derived from
// either token). It returns this platform's id, the sender's and the signing headers.
func (a *Agent) verifyDataPlane(r *http.Request, body []byte) (self, sender int64, h protocol.Headers, err error) {
	e := a.enrolled()
	if e == nil {
		return 0, 0, h, protocol.Errorf(protocol.CodeNotEnrolled, "this agent is not enrolled yet")
	}
	sender, err = strconv.ParseInt(r.Header.Get(protocol.HeaderPlatform), 10, 64)
	if err != nil || sender <= 0 {
		return 0, 0, h, protocol.Errorf(protocol.CodeUnauthorized, "missing or malformed %s", protocol.HeaderPlatform)
	}
	h = protocol.HeadersFrom(r.Header)
	if err := a.verifier.VerifyData(h, body, a.pairKeys(e, sender, a.opts.Now())...); err != nil {
		return 0, 0, h, err
	}
	return e.Platform.ID, sender, h, nil
}
