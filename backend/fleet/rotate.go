package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// PendingTokenKey is the keyring key of a platform's new token while its rotation is in
// flight: "platform/<id>/pending". It is written before the agent hears of the new token
// and removed once the token is stored under secrets.PlatformKey or known to be refused,
// so that no lost answer can leave the keyring without the token the agent accepts.
func PendingTokenKey(id int64) string { return secrets.PlatformKey(id) + "/pending" }

// RotatePlatformToken gives a platform a new token without any window in which its agent
// could be locked out:
//
//  1. a new token is generated and stored under PendingTokenKey;
//  2. Client.RotateToken sends it (signed with the old key) and confirms it with a request
//     signed with the new key;
//  3. only then is it stored under secrets.PlatformKey and the pending entry removed, and
//     the revision bumped (the pair keys of the platform's peers derive from the token).
//
// If the agent refuses the new token, the pending entry is removed and the old token stays.
// On any other failure both stay in the keyring: the agent accepts the old token until it
// sees the new one, and the next SyncPlatforms (or rotation) finishes the rotation by
// trying the pending token. Call SyncPlatforms afterwards to hand the new pair keys to the
// platform's peers.
func (s *Syncer) RotatePlatformToken(ctx context.Context, platformID int64) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	syncToken, err := s.secrets.Get(ctx, secrets.SyncTokenKey)
	if err != nil {
		return fmt.Errorf("rotate token: read the sync token: %w", err)
	}
	f, err := s.catalog.Fleet(ctx)
	if err != nil {
		return fmt.Errorf("rotate token: read the fleet: %w", err)
	}
	p, ok := f.Platform(platformID)
	if !ok {
		return fmt.Errorf("rotate token: platform %d: %w", platformID, ErrUnknownPlatform)
	}
	if _, err := s.finishRotation(ctx, p, syncToken); err != nil {
		return fmt.Errorf("rotate token: %w", err)
	}
	old, err := s.secrets.Get(ctx, secrets.PlatformKey(platformID))
	if errors.Is(err, secrets.ErrNotFound) {
		return fmt.Errorf("rotate token: platform %d: %w", platformID, ErrMissingToken)
	}
	if err != nil {
		return fmt.Errorf("rotate token: read the token of platform %d: %w", platformID, err)
	}
	c, err := s.client(p, syncToken, old)
	if err != nil {
		return fmt.Errorf("rotate token: %w", err)
	}
	defer c.Close()

	token, err := protocol.GenerateToken()
	if err != nil {
		return fmt.Errorf("rotate token: %w", err)
	}
	if err := s.secrets.Set(ctx, PendingTokenKey(platformID), token); err != nil {
		return fmt.Errorf("rotate token: store the new token as pending: %w", err)
	}
	if err := c.RotateToken(ctx, token); err != nil {
		var (
			re *RotationError
			pe *protocol.Error
		)
		if errors.As(err, &re) && re.Stage == StageSend && errors.As(err, &pe) {
			// The agent answered and refused: it never held the new token.
			s.dropPending(ctx, platformID)
		}
		s.log.Warn("token rotation did not complete", "platform_id", platformID, "err", err)
		return err
	}
	if err := s.promote(ctx, platformID, token); err != nil {
		return err
	}
	s.log.Info("platform token rotated", "platform_id", platformID)
	return nil
}

// client returns a new client for platform p with the given token, outside the pool.
func (s *Syncer) client(p FleetPlatform, syncToken, token string) (*Client, error) {
	opts := s.opts.Client
	opts.URL, opts.Fingerprint = p.AgentURL, p.TLSFingerprint
	opts.SyncToken, opts.PlatformToken = syncToken, token
	return NewClient(opts)
}

// promote makes a confirmed token the platform's token, drops the pending entry and bumps
// the revision. If the token cannot be stored, it stays pending for a later attempt.
func (s *Syncer) promote(ctx context.Context, platformID int64, token string) error {
	if err := s.secrets.Set(ctx, secrets.PlatformKey(platformID), token); err != nil {
		return fmt.Errorf("rotate token: store the new token of platform %d (it stays pending): %w", platformID, err)
	}
	s.dropPending(ctx, platformID)
	if _, err := s.catalog.BumpRevision(ctx); err != nil {
		return fmt.Errorf("rotate token: bump the revision: %w", err)
	}
	return nil
}

func (s *Syncer) dropPending(ctx context.Context, platformID int64) {
	err := s.secrets.Delete(ctx, PendingTokenKey(platformID))
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		s.log.Warn("remove the pending token", "platform_id", platformID, "err", err)
	}
}

// finishRotation resolves a rotation of platform p left unfinished: when a pending token
// exists, it calls GET /api/state signed with it. Accepted: the agent holds it (and now
// uses only it), so it becomes the platform's token. Refused as unauthorized: the agent
// never received it, so it is dropped. No answer: it stays pending. Only keyring failures
// are returned.
func (s *Syncer) finishRotation(ctx context.Context, p FleetPlatform, syncToken string) (promoted bool, err error) {
	pending, err := s.secrets.Get(ctx, PendingTokenKey(p.ID))
	if errors.Is(err, secrets.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the pending token of platform %d: %w", p.ID, err)
	}
	c, err := s.client(p, syncToken, pending)
	if err != nil {
		s.log.Warn("cannot finish the token rotation", "platform_id", p.ID, "err", err)
		return false, nil
	}
	defer c.Close()
	err = c.confirmToken(ctx, pending)
	switch {
	case err == nil:
		if err := s.promote(ctx, p.ID, pending); err != nil {
			return false, err
		}
		s.log.Info("finished an interrupted token rotation", "platform_id", p.ID)
		return true, nil
	case IsCode(err, protocol.CodeUnauthorized):
		s.dropPending(ctx, p.ID)
		s.log.Info("dropped a token the agent never received", "platform_id", p.ID)
		return false, nil
	default:
		s.log.Warn("cannot finish the token rotation yet", "platform_id", p.ID, "err", err)
		return false, nil
	}
}
