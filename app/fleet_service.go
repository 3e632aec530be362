package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// FleetService is the fleet view and Sync Platforms.
type FleetService struct {
	ctx     context.Context
	log     *slog.Logger
	catalog *catalog.Store
	syncer  *fleet.Syncer
	emitter Emitter

	mu sync.Mutex
	// runs holds the cancel functions of the Sync Platforms calls in flight.
	runs   map[*context.CancelFunc]struct{}
	active sync.WaitGroup
	closed bool
	// lastSeen is when the poller last saw each agent answer.
	lastSeen map[int64]time.Time
	// poll, when set, polls every agent once and hands the snapshot to onSnapshot. It runs
	// after each Sync Platforms, so that the fleet view shows the revisions just pushed
	// instead of the last background poll's.
	poll func(ctx context.Context) (fleet.PollSnapshot, error)
}

func (s *FleetService) fail(op string, err error) error {
	return failure(s.log, "FleetService."+op, err)
}

// Overview returns every platform's agent as the background poller last saw it, against
// the catalog's desired-state revision.
func (s *FleetService) Overview() ([]AgentView, error) {
	views, err := s.overview(s.ctx)
	return views, s.fail("Overview", err)
}

func (s *FleetService) overview(ctx context.Context) ([]AgentView, error) {
	snap, err := s.catalog.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	statuses, err := s.catalog.LatestStatuses(ctx)
	if err != nil {
		return nil, err
	}
	byPlatform := make(map[int64]catalog.AgentStatus, len(statuses))
	for _, st := range statuses {
		byPlatform[st.PlatformID] = st
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AgentView, 0, len(snap.Platforms))
	for _, p := range snap.Platforms {
		v := AgentView{
			PlatformID: p.ID, Name: p.Name, Domain: p.Domain, AgentURL: p.AgentURL,
			Enrolled: p.Enrolled(), Revision: p.AckedRevision, DesiredRevision: snap.Revision,
			Syncs: []protocol.SyncStatus{},
		}
		if st, ok := byPlatform[p.ID]; ok {
			v.Online, v.Version, v.Error = st.Online, st.Version, st.Error
			if st.Online {
				v.Revision = st.Revision
				if seen, ok := s.lastSeen[p.ID]; !ok || st.At.After(seen) {
					s.lastSeen[p.ID] = st.At
				}
			}
			if st.Status != nil {
				v.Syncs = append(v.Syncs, st.Status.Syncs...)
			}
		}
		if seen, ok := s.lastSeen[p.ID]; ok {
			v.LastSeen = formatTimePtr(&seen)
		}
		out = append(out, v)
	}
	return out, nil
}

// onSnapshot records a round of the background poller in the catalog and emits the
// fleet view (EventFleetStatus).
func (s *FleetService) onSnapshot(snap fleet.PollSnapshot) {
	ctx := s.ctx
	for _, a := range snap.Agents {
		st := catalog.AgentStatus{PlatformID: a.PlatformID, At: a.At, Online: a.Online, Status: a.Status}
		if a.Health != nil {
			st.Version = a.Health.Version
		}
		if a.Error != "" {
			msg := a.Error
			if a.Code != "" && a.Code != string(protocol.CodeInternal) {
				msg = a.Code + ": " + a.Error
			}
			st.Error = &msg
		}
		if a.Online {
			s.mu.Lock()
			s.lastSeen[a.PlatformID] = a.At
			s.mu.Unlock()
		}
		_, err := s.catalog.RecordStatus(ctx, st)
		var ve *catalog.ValidationError
		if errors.As(err, &ve) && st.Status != nil {
			// The agent reports another platform than the one it serves in the catalog.
			msg := "the agent answers as another platform: " + ve.Message
			st.Status, st.Error = nil, &msg
			_, err = s.catalog.RecordStatus(ctx, st)
		}
		if err != nil && !errors.Is(err, catalog.ErrNotFound) && ctx.Err() == nil {
			s.log.Warn("record agent status", "platform_id", a.PlatformID, "err", err)
		}
	}
	views, err := s.overview(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("fleet overview", "err", err)
		}
		return
	}
	s.emitter.Emit(EventFleetStatus, views)
}

// SyncPlatforms enrolls the agents that are not enrolled yet and pushes its desired state
// to every agent, concurrently. It emits EventSyncPlatformsProgress (about ten a second at
// most, the last one always) and, when done, EventSyncPlatformsDone with the report it
// returns. Pressing it twice is safe: a second run waits for the first and changes
// nothing more. CancelSyncPlatforms stops it; the report then holds the results so far.
func (s *FleetService) SyncPlatforms() (SyncReport, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	if err := s.begin(&cancel); err != nil {
		return SyncReport{}, s.fail("SyncPlatforms", err)
	}
	defer s.end(&cancel)

	names := map[int64]string{}
	if ps, err := s.catalog.Platforms(ctx); err == nil {
		for _, p := range ps {
			names[p.ID] = p.Name
		}
	}
	progress := newThrottle(progressInterval, func(p Progress) { s.emitter.Emit(EventSyncPlatformsProgress, p) })
	rep, err := s.syncer.SyncPlatforms(ctx, fleet.SyncOptions{Progress: func(p fleet.Progress) {
		out := Progress{PlatformID: p.PlatformID, Name: names[p.PlatformID], Done: p.Done, Total: p.Total}
		switch p.Phase {
		case fleet.PhaseEnroll:
			out.Phase = PhaseEnroll
		case fleet.PhasePush:
			out.Phase = PhasePush
		case fleet.PhaseDone:
			out.Phase = PhaseDone
			if p.Result != nil {
				r := pushResultOut(*p.Result)
				out.Result = &r
				if out.Name == "" {
					out.Name = r.Name
				}
			}
		default:
			// Pinning and health checks are part of reaching the agent, not steps of
			// their own for the admin.
			return
		}
		progress.Send(out)
	}})
	progress.Close()
	if len(rep.Results) == 0 && err != nil {
		if errors.Is(err, secrets.ErrNotFound) {
			return SyncReport{}, newError(CodeMissingToken, "there is no sync token yet: generate one in the settings")
		}
		return SyncReport{}, s.fail("SyncPlatforms", err)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		// Results that could not be recorded: the report is still what happened.
		s.log.Warn("sync platforms", "err", err)
	}
	out := reportOut(rep)
	s.emitter.Emit(EventSyncPlatformsDone, out)
	s.refreshAfterRun()
	return out, nil
}

// refreshAfterRun polls the agents once in the background and emits the fresh fleet view
// (EventFleetStatus). shutdown waits for it.
func (s *FleetService) refreshAfterRun() {
	if s.poll == nil {
		return
	}
	var cancel context.CancelFunc = func() {}
	if err := s.begin(&cancel); err != nil {
		return
	}
	go func() {
		defer s.end(&cancel)
		snap, err := s.poll(s.ctx)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("poll agents after Sync Platforms", "err", err)
			}
			return
		}
		s.onSnapshot(snap)
	}()
}

// CancelSyncPlatforms cancels the Sync Platforms runs in flight: the exchanges with agents
// stop, and every agent not done yet gets a failed result with code canceled.
func (s *FleetService) CancelSyncPlatforms() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.runs {
		(*c)()
	}
	return nil
}

func (s *FleetService) begin(cancel *context.CancelFunc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return context.Canceled
	}
	if s.runs == nil {
		s.runs = map[*context.CancelFunc]struct{}{}
	}
	s.runs[cancel] = struct{}{}
	s.active.Add(1)
	return nil
}

func (s *FleetService) end(cancel *context.CancelFunc) {
	s.mu.Lock()
	delete(s.runs, cancel)
	s.mu.Unlock()
	s.active.Done()
}

// shutdown cancels the runs in flight, refuses new ones and waits for them to end.
func (s *FleetService) shutdown() {
	s.mu.Lock()
	s.closed = true
	for c := range s.runs {
		(*c)()
	}
	s.mu.Unlock()
	s.active.Wait()
}
