package app

import (
	"time"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// The wire types of the bound services, mirrored in frontend/src/api/types.ts. Times are
// RFC 3339 strings in UTC; optional values are null, never omitted.

// PlatformInput holds the editable fields of a platform; ID 0 creates a new one. They are
// the fields every agent knows of a platform, protocol.Platform.
type PlatformInput protocol.Platform

// Platform is a platform as the frontend shows it: the editable fields and what the
// control center knows about its agent.
type Platform struct {
	PlatformInput
	TLSFingerprint     *string `json:"tls_fingerprint"`
	PendingFingerprint *string `json:"pending_fingerprint"`
	EnrolledAt         *string `json:"enrolled_at"`
	AckedRevision      int64   `json:"acked_revision"`
	CreatedAt          string  `json:"created_at"`
	UpdatedAt          string  `json:"updated_at"`
}

// SyncInput holds the editable fields of a sync, which are those agents receive
// (protocol.Sync); ID 0 creates a new one. Title is ignored: the catalog generates it.
type SyncInput protocol.Sync

// Sync is a sync as the frontend shows it: the editable fields, the generated title and
// what the agents report about it.
type Sync struct {
	SyncInput
	HasErrors    bool    `json:"has_errors"`
	ErrorMessage *string `json:"error_message"`
	LastSync     *string `json:"last_sync"`
	CreatedAt    string  `json:"created_at"`
	UpdatedAt    string  `json:"updated_at"`
}

// Capabilities are the transformers and sync handlers registered on a platform's agent,
// sorted: the sync form offers a source platform's transformers only.
type Capabilities struct {
	Transformers []string `json:"transformers"`
	Handlers     []string `json:"handlers"`
}

// TypeDifference is a column whose type differs between the source and target models.
type TypeDifference struct {
	Column     string `json:"column"`
	SourceType string `json:"source_type"`
	TargetType string `json:"target_type"`
}

// CompatReport compares a sync's source and target models.
type CompatReport struct {
	MissingOnTarget []string         `json:"missing_on_target"`
	ExtraOnTarget   []string         `json:"extra_on_target"`
	TypeDifferences []TypeDifference `json:"type_differences"`
	// KeyField is the first of ulid, uuid, slug, name, title present on both sides.
	KeyField *string `json:"key_field"`
}

// ProbeResult is what an agent showed before it is trusted: the fingerprint of its TLS
// certificate (empty over plain http) and its health.
type ProbeResult struct {
	Fingerprint string `json:"fingerprint"`
	Version     string `json:"version"`
	Enrolled    bool   `json:"enrolled"`
	PlatformID  *int64 `json:"platform_id"`
}

// AgentView is one platform's agent in the fleet view.
type AgentView struct {
	PlatformID int64  `json:"platform_id"`
	Name       string `json:"name"`
	Domain     string `json:"domain"`
	AgentURL   string `json:"agent_url"`
	Online     bool   `json:"online"`
	Enrolled   bool   `json:"enrolled"`
	Version    string `json:"version"`
	// Revision is the desired-state revision the agent has in force; DesiredRevision the
	// catalog's.
	Revision        int64                 `json:"revision"`
	DesiredRevision int64                 `json:"desired_revision"`
	LastSeen        *string               `json:"last_seen"`
	Error           *string               `json:"error"`
	Syncs           []protocol.SyncStatus `json:"syncs"`
}

// Results of a push.
const (
	ResultOK          = "ok"
	ResultFailed      = "failed"
	ResultUnreachable = "unreachable"
)

// PushResult is the outcome of Sync Platforms for one agent.
type PushResult struct {
	PlatformID int64   `json:"platform_id"`
	Name       string  `json:"name"`
	Result     string  `json:"result"`
	Code       *string `json:"code"`
	Message    *string `json:"message"`
	DurationMS int64   `json:"duration_ms"`
}

// SyncReport is the outcome of one Sync Platforms run.
type SyncReport struct {
	Revision int64        `json:"revision"`
	Results  []PushResult `json:"results"`
}

// Phases of Progress.
const (
	PhaseEnroll = "enroll"
	PhasePush   = "push"
	PhaseDone   = "done"
)

// Progress reports one agent's step during Sync Platforms; Done and Total count agents.
type Progress struct {
	PlatformID int64       `json:"platform_id"`
	Name       string      `json:"name"`
	Phase      string      `json:"phase"`
	Done       int         `json:"done"`
	Total      int         `json:"total"`
	Result     *PushResult `json:"result"`
}

// ActivityEntry is one line of the activity feed: a push or an agent starting to fail.
type ActivityEntry struct {
	// ID identifies the entry among the others (a hash of its content, stable from one
	// List to the next).
	ID           int64   `json:"id"`
	At           string  `json:"at"`
	Kind         string  `json:"kind"`
	PlatformID   int64   `json:"platform_id"`
	PlatformName string  `json:"platform_name"`
	Result       string  `json:"result"`
	Code         *string `json:"code"`
	Message      *string `json:"message"`
}

// Settings are the control center's preferences and what it knows about its secrets.
type Settings struct {
	LogLevel string `json:"log_level"`
	Theme    string `json:"theme"`
	Language string `json:"language"`
	// HasSyncToken, SecretsBackend and SecretsWarning are read-only: Save ignores them.
	HasSyncToken   bool    `json:"has_sync_token"`
	SecretsBackend string  `json:"secrets_backend"`
	SecretsWarning *string `json:"secrets_warning"`
}

// formatTime writes a time as the frontend reads it: RFC 3339 in UTC.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func formatTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := formatTime(*t)
	return &s
}

// nonEmpty returns nil for "" and a pointer to s otherwise.
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func platformOut(p catalog.Platform) Platform {
	return Platform{
		PlatformInput:  PlatformInput(p.Protocol()),
		TLSFingerprint: p.TLSFingerprint, PendingFingerprint: p.PendingFingerprint,
		EnrolledAt: formatTimePtr(p.EnrolledAt), AckedRevision: p.AckedRevision,
		CreatedAt: formatTime(p.CreatedAt), UpdatedAt: formatTime(p.UpdatedAt),
	}
}

// catalog returns the platform to store.
func (in PlatformInput) catalog() catalog.Platform {
	return catalog.Platform{
		ID: in.ID, Name: in.Name, Domain: in.Domain, IPAddress: in.IPAddress, Thumbnail: in.Thumbnail,
		Master: in.Master, Locked: in.Locked, LockReason: in.LockReason, ShowInMenu: in.ShowInMenu,
		Order: in.Order, ReadOnly: in.ReadOnly, AgentURL: in.AgentURL,
	}
}

func syncOut(s catalog.Sync) Sync {
	return Sync{
		SyncInput: SyncInput(s.Protocol()),
		HasErrors: s.HasErrors, ErrorMessage: s.ErrorMessage, LastSync: formatTimePtr(s.LastSync),
		CreatedAt: formatTime(s.CreatedAt), UpdatedAt: formatTime(s.UpdatedAt),
	}
}

// catalog returns the sync to store; the fields the form does not edit (syncable_id and
// syncable_type) are taken from old.
func (in SyncInput) catalog(old catalog.Sync) catalog.Sync {
	return catalog.Sync{
		ID: in.ID, SyncableID: old.SyncableID, SyncableType: old.SyncableType,
		Status: in.Status, SourcePlatformID: in.SourcePlatformID, SourceModel: in.SourceModel,
		TargetPlatformID: in.TargetPlatformID, TargetModel: in.TargetModel,
		UsePlatformRelations: in.UsePlatformRelations, IfExists: in.IfExists, SyncIDs: []string(in.SyncIDs),
		SyncAllFields: in.SyncAllFields, FieldMappings: in.FieldMappings,
		UseTransformerClass: in.UseTransformerClass, TransformerConfig: in.TransformerConfig, Interval: in.Interval,
	}
}

// modelOut returns a model with lists, never null.
func modelOut(m protocol.Model) protocol.Model {
	if m.Columns == nil {
		m.Columns = []protocol.Column{}
	}
	if m.Unique == nil {
		m.Unique = [][]string{}
	}
	return m
}

func pushResultOut(r fleet.Result) PushResult {
	return PushResult{
		PlatformID: r.PlatformID, Name: r.Name, Result: r.Outcome,
		Code: nonEmpty(r.Code), Message: nonEmpty(r.Message), DurationMS: r.DurationMS,
	}
}

func reportOut(r fleet.Report) SyncReport {
	out := SyncReport{Revision: r.Revision, Results: make([]PushResult, 0, len(r.Results))}
	for _, res := range r.Results {
		out.Results = append(out.Results, pushResultOut(res))
	}
	return out
}
