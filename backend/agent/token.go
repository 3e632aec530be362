package agent

import (
	"context"
	"net/http"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// Platform token rotation (docs/protocol.md section 9, "Token rotation").
//
// POST /api/token, signed with a K_ctl in force, stores a new platform token durably and
// keeps the one it replaces as the previous token. While the rotation is pending, control
// requests verify with the K_ctl of either token; the first one that verifies with the new
// key confirms the rotation, and from then on the previous key is refused on the control
// plane. Deliveries verify with the pair keys of both tokens until TokenGrace after that
// confirmation. A rotation that is never confirmed leaves the previous token working, also
// across restarts; a second rotation before the confirmation replaces the pending token.
// Tokens are never logged.

// tokenRequest is the body of POST /api/token.
type tokenRequest struct {
	PlatformToken string `json:"platform_token"`
}

// tokenResponse is the answer to POST /api/token.
type tokenResponse struct {
	Status string `json:"status"`
}

// rotateToken answers POST /api/token (already verified by control).
func (a *Agent) rotateToken(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req tokenRequest
	if err := protocol.DecodeStrict(body, &req); err != nil {
		return err
	}
	if err := protocol.CheckToken(req.PlatformToken); err != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "platform_token: %s", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	before := a.enrolled()
	e, err := a.store.RotateToken(r.Context(), req.PlatformToken, a.opts.Now())
	if err != nil {
		return err
	}
	a.enrollment.Store(&e)
	switch {
	case before != nil && e.PlatformToken == before.PlatformToken && e.PreviousToken == before.PreviousToken:
		a.log.Info("platform token rotation repeated; nothing changed", "platform_id", e.Platform.ID)
	case e.RotationPending() && before != nil && before.RotationPending():
		a.log.Info("platform token rotation replaced the pending token; the previous token stays valid until a "+
			"request signed with the new one", "platform_id", e.Platform.ID)
	case e.RotationPending():
		a.log.Info("platform token rotated; the previous token stays valid until a request signed with the new one",
			"platform_id", e.Platform.ID)
	default:
		a.log.Info("platform token rotation withdrawn; the previous token is the token again", "platform_id", e.Platform.ID)
	}
	protocol.WriteJSON(w, http.StatusOK, tokenResponse{Status: "rotated"})
	return nil
}

// verifyControlRequest checks a control-plane request against the K_ctl keys of e: the
// newest token, and while a rotation is pending the previous one. It reports whether the
// newest key verified it. It does not check the id for replays.
func (a *Agent) verifyControlRequest(r *http.Request, body []byte, e *state.Enrollment) (newest bool, err error) {
	h := protocol.HeadersFrom(r.Header)
	tokens := e.ControlTokens()
	for i, t := range tokens {
		err = a.verifier.VerifyControl(h, r.Method, r.RequestURI, body, protocol.ControlKey(t, a.opts.SyncToken))
		if err == nil {
			return i == 0, nil
		}
		if protocol.CodeOf(err) != protocol.CodeUnauthorized {
			return false, err // a stale timestamp or a malformed header fails for every key alike
		}
	}
	return false, err
}

// confirmRotation confirms the pending rotation to token after a control request verified
// with it: the previous token is refused on the control plane from now on, and verifies
// deliveries for TokenGrace more.
func (a *Agent) confirmRotation(ctx context.Context, token string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Now()
	e, confirmed, err := a.store.ConfirmToken(ctx, token, now)
	if err != nil {
		return err
	}
	a.enrollment.Store(&e)
	if confirmed {
		a.log.Info("platform token rotation confirmed by a request signed with the new token; the previous token "+
			"is refused on the control plane and accepted for deliveries until the grace ends",
			"platform_id", e.Platform.ID, "grace_ends", now.Add(TokenGrace).UTC().Format(time.RFC3339))
	}
	return nil
}

// forgetPreviousToken erases the previous token once its grace after the confirmation is over.
func (a *Agent) forgetPreviousToken(ctx context.Context, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, forgot, err := a.store.ForgetPreviousToken(ctx, now.Add(-TokenGrace))
	if err != nil {
		a.log.Error("erase the previous platform token", "err", err)
		return
	}
	a.enrollment.Store(&e)
	if forgot {
		a.log.Info("previous platform token erased: its grace for deliveries is over", "platform_id", e.Platform.ID)
	}
}
