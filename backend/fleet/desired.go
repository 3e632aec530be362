package fleet

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// Fleet is a consistent snapshot of what the control center manages: the desired-state
// revision and every platform and sync, read together so that the revision describes
// exactly these rows. It holds no tokens.
type Fleet struct {
	Revision  int64           `json:"revision"`
	Platforms []FleetPlatform `json:"platforms"`
	Syncs     []protocol.Sync `json:"syncs"`
}

// FleetPlatform is a platform with what the control center knows about its agent.
// protocol.Platform carries the agent URL.
type FleetPlatform struct {
	protocol.Platform
	// WebhookPath is where its agent receives data deliveries (default
	// protocol.DefaultWebhookPath).
	WebhookPath string `json:"webhook_path"`
	// TLSFingerprint is the pinned fingerprint of its agent's certificate; empty for a
	// plain http agent, or while an https agent is not pinned yet.
	TLSFingerprint string `json:"tls_fingerprint"`
	// Enrolled is true once the catalog has recorded the agent's enrollment.
	Enrolled bool `json:"enrolled"`
}

// ErrUnknownPlatform is returned for a platform id that the fleet does not hold.
var ErrUnknownPlatform = errors.New("unknown platform")

// ErrMissingToken is returned when a token needed to derive a key is not available.
var ErrMissingToken = errors.New("missing token")

// Platform returns the platform with the given id.
func (f Fleet) Platform(id int64) (FleetPlatform, bool) {
	for _, p := range f.Platforms {
		if p.ID == id {
			return p, true
		}
	}
	return FleetPlatform{}, false
}

// DesiredState computes the desired state of platform platformID's agent (PROTOCOL.md
// section 6) from the fleet snapshot:
//   - platforms: every platform, sorted by id (they carry no tokens);
//   - syncs: those where the platform is source or target, enabled or not, sorted by id;
//   - peers: one per distinct target platform B of the platform's enabled syncs where it is
//     the source, with key EncodeKey(PairKey(ControlKey(token(B), syncToken), P, B)), B's
//     agent URL, webhook path and pinned fingerprint, sorted by platform id.
//
// tokens maps platform ids to platform tokens; only the tokens of the peers are used, and
// none of them appears in the result.
func DesiredState(f Fleet, platformID int64, syncToken string, tokens map[int64]string) (protocol.State, error) {
	if err := protocol.CheckToken(syncToken); err != nil {
		return protocol.State{}, fmt.Errorf("desired state: sync token: %w", err)
	}
	self, ok := f.Platform(platformID)
	if !ok {
		return protocol.State{}, fmt.Errorf("desired state of platform %d: %w", platformID, ErrUnknownPlatform)
	}
	st := protocol.State{
		Revision: f.Revision,
		Platform: protocol.PlatformRef{
			ID: self.ID, Name: self.Name, Domain: self.Domain, AgentURL: self.AgentURL,
		},
		Platforms: make([]protocol.Platform, 0, len(f.Platforms)),
		Syncs:     []protocol.Sync{},
		Peers:     []protocol.Peer{},
	}
	for _, p := range f.Platforms {
		st.Platforms = append(st.Platforms, p.Platform)
	}
	slices.SortFunc(st.Platforms, func(a, b protocol.Platform) int { return cmp.Compare(a.ID, b.ID) })

	targets := map[int64]bool{}
	for _, s := range f.Syncs {
		if s.SourcePlatformID != platformID && s.TargetPlatformID != platformID {
			continue
		}
		st.Syncs = append(st.Syncs, s)
		if s.Status && s.SourcePlatformID == platformID {
			targets[s.TargetPlatformID] = true
		}
	}
	slices.SortFunc(st.Syncs, func(a, b protocol.Sync) int { return cmp.Compare(a.ID, b.ID) })

	for targetID := range targets {
		target, ok := f.Platform(targetID)
		if !ok {
			return protocol.State{}, fmt.Errorf("desired state of platform %d: peer %d: %w",
				platformID, targetID, ErrUnknownPlatform)
		}
		token := tokens[targetID]
		if token == "" {
			return protocol.State{}, fmt.Errorf("desired state of platform %d: token of peer platform %d: %w",
				platformID, targetID, ErrMissingToken)
		}
		key := protocol.PairKey(protocol.ControlKey(token, syncToken), platformID, targetID)
		path := target.WebhookPath
		if path == "" {
			path = protocol.DefaultWebhookPath
		}
		st.Peers = append(st.Peers, protocol.Peer{
			PlatformID:     targetID,
			URL:            target.AgentURL,
			WebhookPath:    path,
			Key:            protocol.EncodeKey(key),
			TLSFingerprint: target.TLSFingerprint,
		})
	}
	slices.SortFunc(st.Peers, func(a, b protocol.Peer) int { return cmp.Compare(a.PlatformID, b.PlatformID) })
	return st, nil
}
