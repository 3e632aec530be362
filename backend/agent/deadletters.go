package agent

import (
	"net/http"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// deadLetter is one entry of GET /api/syncs/{id}/dead-letters: a batch given up on.
type deadLetter struct {
	BatchID  string `json:"batch_id"`
	Reason   string `json:"reason"`
	FailedAt string `json:"failed_at"`
	Count    int    `json:"count"`
}

// deadLettersResponse is the answer to GET /api/syncs/{id}/dead-letters.
type deadLettersResponse struct {
	DeadLetters []deadLetter `json:"dead_letters"`
}

// requeuedResponse is the answer to POST /api/syncs/{id}/dead-letters/retry.
type requeuedResponse struct {
	Status   string   `json:"status"`
	BatchIDs []string `json:"batch_ids"`
}

// syncInForce returns the {id} sync of the request, which must be in the state in force.
func (a *Agent) syncInForce(r *http.Request) (protocol.Sync, error) {
	id, err := pathID(r)
	if err != nil {
		return protocol.Sync{}, err
	}
	s, ok := a.findSync(id)
	if !ok {
		return protocol.Sync{}, protocol.Errorf(protocol.CodeNotFound, "no sync %d", id)
	}
	return s, nil
}

// deadLetters answers GET /api/syncs/{id}/dead-letters: the batches of the sync given up on,
// oldest first, without their bodies.
func (a *Agent) deadLetters(w http.ResponseWriter, r *http.Request, _ []byte) error {
	s, err := a.syncInForce(r)
	if err != nil {
		return err
	}
	list, err := a.store.DeadLetterList(r.Context(), s.ID)
	if err != nil {
		return err
	}
	out := deadLettersResponse{DeadLetters: make([]deadLetter, len(list))}
	for i, d := range list {
		out.DeadLetters[i] = deadLetter{BatchID: d.BatchID, Reason: d.Reason, Count: d.Count,
			FailedAt: d.FailedAt.UTC().Format(time.RFC3339Nano)}
	}
	protocol.WriteJSON(w, http.StatusOK, out)
	return nil
}

// retryDeadLetters answers POST /api/syncs/{id}/dead-letters/retry (empty body or {}): it
// moves every dead letter of the sync back to the inbox, where the sync's worker applies
// them in seq order with a fresh retry budget. The sync reports has_errors until they are
// applied; a batch that fails again returns to the dead letters.
func (a *Agent) retryDeadLetters(w http.ResponseWriter, r *http.Request, body []byte) error {
	if len(body) > 0 {
		var empty struct{}
		if err := protocol.DecodeStrict(body, &empty); err != nil {
			return err
		}
	}
	s, err := a.syncInForce(r)
	if err != nil {
		return err
	}
	ids, err := a.store.RequeueDeadLetters(r.Context(), s.ID)
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		a.log.Info("dead letters moved back to the inbox", "sync_id", s.ID, "count", len(ids))
		a.workers.notify(s.ID)
	}
	protocol.WriteJSON(w, http.StatusOK, requeuedResponse{Status: "requeued", BatchIDs: ids})
	return nil
}
