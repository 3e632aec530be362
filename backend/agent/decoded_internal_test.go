package agent

import (
	"fmt"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

func batchOf(id string, n int) *protocol.Batch {
	return &protocol.Batch{BatchID: id, Changes: make([]protocol.Change, n)}
}

func TestDecodedBatches_KeepsTheNewestWithinBounds(t *testing.T) {
	d := newDecodedBatches()
	for i := range decodedMaxBatches + 2 {
		d.put(batchOf(fmt.Sprint("b", i), 10))
	}
	if d.take("b0") != nil || d.take("b1") != nil {
		t.Fatal("the oldest batches beyond the bound are kept")
	}
	if b := d.take("b2"); b == nil || b.BatchID != "b2" {
		t.Fatalf("take b2 = %v", b)
	}
	if d.take("b2") != nil {
		t.Fatal("a batch is handed out twice")
	}

	// A batch that would go over the change bound pushes the others out; one over it on its
	// own is not kept.
	d.put(batchOf("big", decodedMaxChanges))
	if d.take("b3") != nil || d.changes != decodedMaxChanges || len(d.order) != 1 {
		t.Fatalf("after a full-size batch: %d changes in %d batches", d.changes, len(d.order))
	}
	d.put(batchOf("huge", decodedMaxChanges+1))
	if d.take("huge") != nil || d.take("big") == nil || d.changes != 0 {
		t.Fatalf("bounds: %d changes left", d.changes)
	}
}
