package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// ErrNotRunning is returned for a sync that has no running sender on this agent (unknown,
// disabled, not sourced here, or broken).
var ErrNotRunning = fmt.Errorf("deliver: the sync is not running on this agent")

// maxAnswer bounds the answer of a signed data-plane request.
const maxAnswer = 64 << 20

// PostSigned posts body to the target of sync syncID at its webhook URL followed by
// suffix (e.g. "/reconcile/hashes"), signed with K_pair like a delivery, over the pinned
// transport, and returns the body of a 200 or 202 answer.
func (m *Manager) PostSigned(ctx context.Context, syncID int64, suffix string, body []byte) ([]byte, error) {
	s, err := m.running(syncID)
	if err != nil {
		return nil, err
	}
	return s.postRaw(ctx, suffix, protocol.NewULID(), body)
}

// SendRepairs delivers changes to the target of sync syncID as one signed batch (Seq 0)
// that the target stores and applies like any delivery. Each change goes through the
// sync's transformer first, as captured rows do; changes it drops are left out. With
// platform relations, a record that does not belong to the target goes as a should_delete
// without data, as captured changes do. It returns once the target accepted the batch,
// retrying as a delivery does until ctx ends.
func (m *Manager) SendRepairs(ctx context.Context, syncID int64, changes []protocol.Change) error {
	s, err := m.running(syncID)
	if err != nil {
		return err
	}
	out := make([]protocol.Change, 0, len(changes))
	for _, c := range changes {
		if s.spec.relations && c.EventType != protocol.EventDeleted && !c.ShouldDelete {
			related, err := m.relatesToTarget(ctx, s, c.Key)
			if err != nil {
				return fmt.Errorf("platform relations of sync %d: %w", syncID, err)
			}
			if !related {
				c.EventType, c.ShouldDelete, c.Data = protocol.EventDeleted, true, nil
			}
		}
		if s.t != nil && c.EventType != protocol.EventDeleted {
			img, err := json.Marshal(c.Data)
			if err != nil {
				return err
			}
			at, _ := time.Parse(time.RFC3339Nano, c.ChangedAt)
			tc := transform.Change{SyncID: s.spec.syncID, TargetPlatformID: s.spec.target, Model: s.spec.model,
				Event: c.EventType, ChangedAt: at.UTC()}
			img, keep, err := transform.Image(ctx, s.t, tc, img)
			if err != nil {
				return fmt.Errorf("transformer of sync %d: %w", syncID, err)
			}
			if !keep {
				continue
			}
			var data map[string]any
			dec := json.NewDecoder(bytes.NewReader(img))
			dec.UseNumber()
			if err := dec.Decode(&data); err != nil {
				return fmt.Errorf("transformer of sync %d: %w", syncID, err)
			}
			c.Data = data
		}
		if c.OriginPlatformID == 0 {
			c.OriginPlatformID = s.spec.self
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil
	}
	b := protocol.Batch{BatchID: protocol.NewULID(), SourcePlatformID: s.spec.self, SyncID: syncID, Changes: out}
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		_, err := s.postRaw(ctx, "", b.BatchID, body)
		if err == nil {
			return m.store.addSent(context.WithoutCancel(ctx), syncID, len(out), m.opts.Now())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if de, ok := err.(*deliveryError); ok && de.permanent() {
			return err
		}
		if attempt >= 8 {
			return err
		}
		t := time.NewTimer(m.backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// relatesToTarget reports whether the record a repair's key names belongs to the sender's
// target by its platform relations. The key names the record as sent, which a transformer
// may have renamed: a record the source does not find by it counts as not belonging.
func (m *Manager) relatesToTarget(ctx context.Context, s *sender, key protocol.Key) (bool, error) {
	if m.opts.Records == nil {
		return false, errors.New("delivery was not given the application database")
	}
	id, found, err := m.opts.Records.IDByKey(ctx, s.spec.model, key.Field, key.Value)
	if err != nil || !found {
		return false, err
	}
	platforms, err := m.opts.Records.Platforms(ctx, s.spec.model, id)
	return slices.Contains(platforms, s.spec.target), err
}

func (m *Manager) running(syncID int64) (*sender, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.senders[syncID]
	if s == nil {
		if why := m.broken[syncID]; why != "" {
			return nil, fmt.Errorf("%w: %s", ErrNotRunning, why)
		}
		return nil, ErrNotRunning
	}
	return s, nil
}

// postRaw sends body once to the sender's URL plus suffix, signed with id.
func (s *sender) postRaw(ctx context.Context, suffix, id string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.m.opts.RequestTimeout)
	defer cancel()
	url := strings.TrimRight(s.spec.url, "/") + suffix
	if suffix == "" {
		url = s.spec.url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	s.signer.SignData(id, body, s.key).Set(req.Header)
	req.Header.Set(protocol.HeaderPlatform, s.self)
	resp, err := s.m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", url, err)
	}
	if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK {
		return raw, nil
	}
	return nil, &deliveryError{status: resp.StatusCode, retryAfter: retryAfter(resp.Header.Get("Retry-After"), s.m.opts.Now()),
		err: protocol.DecodeError(resp.StatusCode, raw), url: url}
}

// Transformer returns the transformer of sync syncID's running sender (nil: none).
func (m *Manager) Transformer(syncID int64) (transform.Transformer, error) {
	s, err := m.running(syncID)
	if err != nil {
		return nil, err
	}
	return s.t, nil
}
