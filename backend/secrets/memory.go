package secrets

import (
	"context"
	"fmt"
	"sync"
)

var _ Store = (*Memory)(nil)

// Memory is a Store that keeps secrets in memory only; for tests. The zero value is an
// empty store ready to use.
type Memory struct {
	mu sync.Mutex
	m  map[string]string
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{} }

// Get returns the secret stored under key, or ErrNotFound.
func (s *Memory) Get(ctx context.Context, key string) (string, error) {
	var v string
	err := s.with(ctx, "get", key, func(m map[string]string) error {
		var ok bool
		if v, ok = m[key]; !ok {
			return ErrNotFound
		}
		return nil
	})
	return v, err
}

// Set stores value under key.
func (s *Memory) Set(ctx context.Context, key, value string) error {
	return s.with(ctx, "set", key, func(m map[string]string) error {
		m[key] = value
		return nil
	})
}

// Delete removes the secret stored under key, or returns ErrNotFound.
func (s *Memory) Delete(ctx context.Context, key string) error {
	return s.with(ctx, "delete", key, func(m map[string]string) error {
		if _, ok := m[key]; !ok {
			return ErrNotFound
		}
		delete(m, key)
		return nil
	})
}

// with runs fn on the secrets under the lock.
func (s *Memory) with(ctx context.Context, op, key string, fn func(m map[string]string) error) error {
	if err := begin(ctx, op, key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]string)
	}
	if err := fn(s.m); err != nil {
		return fmt.Errorf("%s secret %q: %w", op, key, err)
	}
	return nil
}
