package agent

import (
	"sync"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// Bounds of the decoded batches handed from the webhook to the apply workers.
const (
	decodedMaxBatches = 4
	decodedMaxChanges = 4000
)

// decodedBatches hands the batches the webhook decoded and stored to the apply workers, so
// that a batch applied soon after it arrived is not decoded a second time from its stored
// body (decoding is most of a target's work). It holds a few batches at most, the newest:
// a worker that is behind decodes from the inbox as after a restart.
type decodedBatches struct {
	mu      sync.Mutex
	order   []*protocol.Batch // oldest first
	changes int
}

func newDecodedBatches() *decodedBatches { return &decodedBatches{} }

// put keeps a stored batch, dropping the oldest ones beyond the bounds.
func (d *decodedBatches) put(b *protocol.Batch) {
	if len(b.Changes) > decodedMaxChanges {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.order) > 0 && (len(d.order) >= decodedMaxBatches || d.changes+len(b.Changes) > decodedMaxChanges) {
		d.changes -= len(d.order[0].Changes)
		d.order[0] = nil
		d.order = d.order[1:]
	}
	d.order = append(d.order, b)
	d.changes += len(b.Changes)
}

// take removes and returns the batch with the given id, nil when it is not held.
func (d *decodedBatches) take(id string) *protocol.Batch {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, b := range d.order {
		if b.BatchID == id {
			d.order = append(d.order[:i], d.order[i+1:]...)
			d.changes -= len(b.Changes)
			return b
		}
	}
	return nil
}
