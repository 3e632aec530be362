package protocol

import (
	"context"
	"sync"
	"time"
)

// SeenStore remembers message ids so that a signed control-plane request cannot be replayed.
// Implementations used by agents persist the ids, so that a restart opens no replay window.
type SeenStore interface {
	// Remember records id as seen at now. It reports seen=true, and records nothing, when the
	// id was already recorded less than ReplayWindow before now.
	Remember(ctx context.Context, id string, now time.Time) (seen bool, err error)
}

// MemorySeenStore is a SeenStore in memory, for tests and for the control center.
type MemorySeenStore struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

var _ SeenStore = (*MemorySeenStore)(nil)

// NewMemorySeenStore returns an empty MemorySeenStore.
func NewMemorySeenStore() *MemorySeenStore {
	return &MemorySeenStore{ids: make(map[string]time.Time)}
}

// Remember implements SeenStore.
func (m *MemorySeenStore) Remember(_ context.Context, id string, now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if at, ok := m.ids[id]; ok && now.Sub(at) < ReplayWindow {
		return true, nil
	}
	if len(m.ids) > 1024 {
		for k, at := range m.ids {
			if now.Sub(at) >= ReplayWindow {
				delete(m.ids, k)
			}
		}
	}
	m.ids[id] = now
	return false, nil
}
