package agent

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/transform"
)

// health answers GET /api/health, the only unsigned endpoint.
func (a *Agent) health(w http.ResponseWriter, _ *http.Request) {
	h := protocol.Health{Status: "ok", Version: a.opts.Version}
	if e := a.enrolled(); e != nil {
		id := e.Platform.ID
		h.Enrolled, h.PlatformID = true, &id
	}
	protocol.WriteJSON(w, http.StatusOK, h)
}

// enroll answers POST /api/enroll, signed with K_boot. The first enrollment binds the agent
// to a platform and its token; the same platform and token again (during a pending token
// rotation, either token) is answered 200 as the first time, anything else 409
// already_enrolled.
func (a *Agent) enroll(w http.ResponseWriter, r *http.Request, body []byte) error {
	if err := a.verifyControl(r, body, protocol.BootKey(a.opts.SyncToken)); err != nil {
		return err
	}
	var req protocol.EnrollRequest
	if err := protocol.DecodeStrict(body, &req); err != nil {
		return err
	}
	if req.Platform.ID <= 0 {
		return protocol.Errorf(protocol.CodeBadRequest, "platform.id must be positive")
	}
	if err := protocol.CheckToken(req.PlatformToken); err != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "platform_token: %s", err)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if cur := a.enrolled(); cur != nil {
		same := false
		if cur.Platform.ID == req.Platform.ID {
			for _, t := range cur.ControlTokens() {
				if subtle.ConstantTimeCompare([]byte(t), []byte(req.PlatformToken)) == 1 {
					same = true
				}
			}
		}
		if !same {
			return protocol.Errorf(protocol.CodeAlreadyEnrolled,
				"this agent is already enrolled; enrolling it again needs the same platform and token")
		}
		if !reflect.DeepEqual(cur.Platform, req.Platform) {
			e := *cur
			e.Platform = req.Platform
			if err := a.store.SaveEnrollment(r.Context(), e); err != nil {
				return err
			}
			a.enrollment.Store(&e)
		}
		a.log.Info("enrollment confirmed", "platform_id", req.Platform.ID)
	} else {
		e := state.Enrollment{Platform: req.Platform, PlatformToken: req.PlatformToken, EnrolledAt: a.opts.Now()}
		if err := a.store.SaveEnrollment(r.Context(), e); err != nil {
			return err
		}
		a.enrollment.Store(&e)
		a.log.Info("enrolled", "platform_id", req.Platform.ID, "platform", req.Platform.Name)
	}
	protocol.WriteJSON(w, http.StatusOK, protocol.EnrollResponse{
		PlatformID:     req.Platform.ID,
		AgentVersion:   a.opts.Version,
		TLSFingerprint: a.opts.TLSFingerprint,
	})
	return nil
}

// getState answers GET /api/state: the state in force, peer keys redacted.
func (a *Agent) getState(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	protocol.WriteJSON(w, http.StatusOK, normalizeState(a.current().Redacted()))
	return nil
}

// putState answers PUT /api/state: it validates the desired state, makes it the state in
// force atomically, and answers 200 with it, redacted.
func (a *Agent) putState(w http.ResponseWriter, r *http.Request, body []byte) error {
	var st protocol.State
	if err := protocol.DecodeStrict(body, &st); err != nil {
		return err
	}
	if err := validateState(st, a.selfID()); err != nil {
		return err
	}
	// The transformers run here: one this agent does not have, or a config it refuses,
	// would stop the sync's delivery, so the state is refused instead.
	for _, s := range st.Syncs {
		if s.SourcePlatformID == a.selfID() {
			if err := transform.Validate(a.opts.Transformers, s); err != nil {
				return err
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.current()
	if err := a.store.PutState(r.Context(), st, a.opts.Now()); err != nil {
		if errors.Is(err, state.ErrStaleRevision) {
			return protocol.Errorf(protocol.CodeConflict, "revision %d is older than revision %d in force",
				st.Revision, cur.Revision)
		}
		return err
	}
	a.setState(st)
	a.log.Info("desired state in force", "revision", st.Revision, "previous_revision", cur.Revision,
		"platforms", len(st.Platforms), "syncs", len(st.Syncs), "peers", len(st.Peers))
	protocol.WriteJSON(w, http.StatusOK, normalizeState(a.current().Redacted()))
	return nil
}

// validateState checks a desired state for the agent of platform self.
func validateState(st protocol.State, self int64) error {
	bad := func(format string, args ...any) error {
		return protocol.Errorf(protocol.CodeBadRequest, format, args...)
	}
	if st.Revision < 0 {
		return bad("revision must not be negative")
	}
	if st.Platform.ID != self {
		return bad("the state is for platform %d, this agent is enrolled as platform %d", st.Platform.ID, self)
	}
	platforms := make(map[int64]bool, len(st.Platforms))
	for _, p := range st.Platforms {
		if p.ID <= 0 {
			return bad("platforms: id must be positive")
		}
		if platforms[p.ID] {
			return bad("platforms: id %d appears twice", p.ID)
		}
		platforms[p.ID] = true
	}
	syncs := make(map[int64]bool, len(st.Syncs))
	for _, s := range st.Syncs {
		if syncs[s.ID] {
			return bad("syncs: id %d appears twice", s.ID)
		}
		syncs[s.ID] = true
		if err := validateSync(s, self); err != nil {
			return err
		}
	}
	peers := make(map[int64]bool, len(st.Peers))
	for _, p := range st.Peers {
		if p.PlatformID <= 0 {
			return bad("peers: platform_id must be positive")
		}
		if peers[p.PlatformID] {
			return bad("peers: platform %d appears twice", p.PlatformID)
		}
		peers[p.PlatformID] = true
		if _, err := protocol.DecodeKey(p.Key); err != nil {
			return bad("peers: platform %d: %s", p.PlatformID, err)
		}
		if p.WebhookPath != "" && !strings.HasPrefix(p.WebhookPath, "/") {
			return bad("peers: platform %d: webhook_path must start with /", p.PlatformID)
		}
	}
	return nil
}

// validateSync checks one sync as the agent of platform self keeps it.
func validateSync(s protocol.Sync, self int64) error {
	bad := func(format string, args ...any) error {
		return protocol.Errorf(protocol.CodeBadRequest, "sync %d: %s", s.ID, fmt.Sprintf(format, args...))
	}
	switch {
	case s.ID <= 0:
		return bad("id must be positive")
	case s.SourcePlatformID <= 0 || s.TargetPlatformID <= 0:
		return bad("source_platform_id and target_platform_id must be positive")
	case s.SourcePlatformID != self && s.TargetPlatformID != self:
		return bad("platform %d is neither its source nor its target", self)
	case s.SourceModel == "" || s.TargetModel == "":
		return bad("source_model and target_model are required")
	case s.SourcePlatformID == s.TargetPlatformID && s.SourceModel == s.TargetModel:
		return bad("source and target are the same platform and model")
	}
	switch s.IfExists {
	case "", protocol.IfExistsUpdate, protocol.IfExistsSkip, protocol.IfExistsError:
	default:
		return bad("if_exists must be update, skip or error")
	}
	return nil
}

// status answers GET /api/status (PROTOCOL.md section 8).
func (a *Agent) status(w http.ResponseWriter, r *http.Request, _ []byte) error {
	st := a.current()
	reports, err := a.store.Reports(r.Context())
	if err != nil {
		return err
	}
	var sources map[int64]protocol.SyncStatus
	if a.opts.Source != nil {
		if sources, err = a.opts.Source.Status(r.Context()); err != nil {
			return fmt.Errorf("source status: %w", err)
		}
	}
	now := a.opts.Now()
	self := a.selfID()
	out := protocol.Status{
		PlatformID: self,
		Revision:   st.Revision,
		Version:    a.opts.Version,
		UptimeS:    int64(now.Sub(a.started) / time.Second),
		Syncs:      make([]protocol.SyncStatus, 0, len(st.Syncs)),
	}
	// One entry per role: a sync from this platform to itself (another model) gets two.
	for _, s := range st.Syncs {
		if s.SourcePlatformID == self {
			ss, ok := sources[s.ID]
			if !ok {
				ss = protocol.SyncStatus{ID: s.ID, Status: s.Status}
			}
			ss.Role = "source"
			out.Syncs = append(out.Syncs, ss)
		}
		if s.TargetPlatformID != self {
			continue
		}
		ss := protocol.SyncStatus{ID: s.ID, Role: "target", Status: s.Status}
		if rep := reports[s.ID]; rep != nil {
			ss.Pending, ss.Applied, ss.Failed = rep.Pending, rep.Applied, rep.Failed
			if !rep.LastSync.IsZero() {
				v := rep.LastSync.UTC().Format(time.RFC3339)
				ss.LastSync = &v
			}
			if rep.Pending > 0 {
				ss.LagMS = max(0, now.Sub(rep.OldestPending).Milliseconds())
			}
			if rep.DeadLetters > 0 || rep.Retrying || rep.Requeued {
				ss.HasErrors = true
				msg := rep.LastError
				ss.ErrorMessage = &msg
			}
		}
		out.Syncs = append(out.Syncs, ss)
	}
	ext := statusWithReconcile{Status: out, Syncs: make([]syncStatusWithReconcile, len(out.Syncs))}
	for i, ss := range out.Syncs {
		ext.Syncs[i].SyncStatus = ss
		if ss.Role == "source" {
			ext.Syncs[i].Reconcile = a.runs.lastRun(ss.ID)
		}
	}
	protocol.WriteJSON(w, http.StatusOK, ext)
	return nil
}

// statusWithReconcile is protocol.Status with, for each sync from this platform, its last
// reconciliation (the initial load while it runs, with its progress).
type statusWithReconcile struct {
	protocol.Status
	Syncs []syncStatusWithReconcile `json:"syncs"`
}

type syncStatusWithReconcile struct {
	protocol.SyncStatus
	Reconcile *ReconcileRun `json:"reconcile,omitempty"`
}

// models answers GET /api/models with the tables of the application database.
func (a *Agent) models(w http.ResponseWriter, r *http.Request, _ []byte) error {
	models, err := a.opts.Models.Models(r.Context())
	if err != nil {
		return fmt.Errorf("list models: %w", err)
	}
	if models == nil {
		models = []protocol.Model{}
	}
	protocol.WriteJSON(w, http.StatusOK, protocol.ModelsResponse{Models: models,
		Transformers: a.opts.Transformers.Names(), Handlers: a.opts.Handlers.Names()})
	return nil
}
