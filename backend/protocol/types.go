// Package protocol holds the mooxsync wire contract shared by the control center and the
// agents: JSON types, error codes, key derivation, request signing and verification.
// docs/protocol.md is the human-readable form of the same contract.
package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Version is the protocol version spoken by this package.
const Version = "v1"

// DefaultWebhookPath is the data-plane path used when a platform configures none.
const DefaultWebhookPath = "/sync-webhook"

// DefaultBodyLimit is the largest request body an agent accepts (32 MiB).
const DefaultBodyLimit = 32 << 20

// Event types of a Change.
const (
	EventCreated = "created"
	EventUpdated = "updated"
	EventDeleted = "deleted"
)

// if_exists policies of a Sync.
const (
	IfExistsUpdate = "update"
	IfExistsSkip   = "skip"
	IfExistsError  = "error"
)

// Platform is a platform as every agent knows it (section 6). It never carries tokens.
type Platform struct {
	ID         int64   `json:"id"`
	Name       string  `json:"name"`
	Domain     string  `json:"domain"`
	IPAddress  *string `json:"ip_address"`
	Thumbnail  *string `json:"thumbnail"`
	Master     bool    `json:"master"`
	Locked     bool    `json:"locked"`
	LockReason *string `json:"lock_reason"`
	ShowInMenu bool    `json:"show_in_menu"`
	Order      int64   `json:"order"`
	ReadOnly   bool    `json:"read_only"`
	AgentURL   string  `json:"agent_url"`
}

// PlatformRef names the platform an agent serves, in the desired state.
type PlatformRef struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Domain   string `json:"domain"`
	AgentURL string `json:"agent_url"`
}

// Sync is one one-way sync from a source platform's model to a target platform's model,
// with the Moox Sync columns.
type Sync struct {
	ID                   int64             `json:"id"`
	Status               bool              `json:"status"`
	Title                string            `json:"title"`
	SourcePlatformID     int64             `json:"source_platform_id"`
	SourceModel          string            `json:"source_model"`
	TargetPlatformID     int64             `json:"target_platform_id"`
	TargetModel          string            `json:"target_model"`
	UsePlatformRelations bool              `json:"use_platform_relations"`
	IfExists             string            `json:"if_exists"`
	SyncIDs              IDList            `json:"sync_ids"`
	SyncAllFields        bool              `json:"sync_all_fields"`
	FieldMappings        map[string]string `json:"field_mappings"`
	UseTransformerClass  *string           `json:"use_transformer_class"`
	// TransformerConfig configures the transformer use_transformer_class names (an object,
	// required by "declarative"); absent or null when unused. See backend/transform.
	TransformerConfig json.RawMessage `json:"transformer_config,omitempty"`
	Interval          int64           `json:"interval"`
}

// IDList is a list of record identifiers. On the wire it is a JSON array whose elements may
// be strings or numbers; both decode to their decimal or literal string form. null is a nil list.
type IDList []string

// UnmarshalJSON accepts an array of strings and numbers, or null.
func (l *IDList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*l = nil
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("sync_ids: want an array of strings or numbers: %w", err)
	}
	out := make(IDList, 0, len(raw))
	for _, r := range raw {
		var s string
		if err := json.Unmarshal(r, &s); err == nil {
			out = append(out, s)
			continue
		}
		var n json.Number
		if err := json.Unmarshal(r, &n); err != nil {
			return fmt.Errorf("sync_ids: element %s is neither string nor number", r)
		}
		out = append(out, n.String())
	}
	*l = out
	return nil
}

// Peer is a target platform that this agent delivers to, with the pair key for it.
type Peer struct {
	PlatformID     int64  `json:"platform_id"`
	URL            string `json:"url"`
	WebhookPath    string `json:"webhook_path"`
	Key            string `json:"key"`
	TLSFingerprint string `json:"tls_fingerprint"`
}

// State is the declarative desired state that the control center PUTs to an agent.
type State struct {
	Revision  int64       `json:"revision"`
	Platform  PlatformRef `json:"platform"`
	Platforms []Platform  `json:"platforms"`
	Syncs     []Sync      `json:"syncs"`
	Peers     []Peer      `json:"peers"`
}

// Redacted returns a copy of the state whose peer keys are blanked out.
func (s State) Redacted() State {
	peers := make([]Peer, len(s.Peers))
	for i, p := range s.Peers {
		p.Key = ""
		peers[i] = p
	}
	s.Peers = peers
	return s
}

// Health is the body of GET /api/health.
type Health struct {
	Status     string `json:"status"`
	Version    string `json:"version"`
	Enrolled   bool   `json:"enrolled"`
	PlatformID *int64 `json:"platform_id"`
}

// EnrollRequest is the body of POST /api/enroll.
type EnrollRequest struct {
	Platform      Platform `json:"platform"`
	PlatformToken string   `json:"platform_token"`
}

// EnrollResponse is the answer to a successful enrollment.
type EnrollResponse struct {
	PlatformID     int64  `json:"platform_id"`
	AgentVersion   string `json:"agent_version"`
	TLSFingerprint string `json:"tls_fingerprint"`
}

// Column describes one column of an application table.
type Column struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Nullable   bool   `json:"nullable"`
	PrimaryKey bool   `json:"primary_key"`
}

// Model describes one table of the application database.
type Model struct {
	Name    string     `json:"name"`
	Columns []Column   `json:"columns"`
	Unique  [][]string `json:"unique"`
}

// ModelsResponse is the body of GET /api/models. Transformers and Handlers (an addition,
// docs/protocol.md section 9) name the transformers and sync handlers registered on the
// agent, sorted: what a sync may name in use_transformer_class, and sync_bindings in the
// agent's config.
type ModelsResponse struct {
	Models       []Model  `json:"models"`
	Transformers []string `json:"transformers,omitempty"`
	Handlers     []string `json:"handlers,omitempty"`
}

// Key identifies a record across platforms by one of its unique identifier fields.
type Key struct {
	Field string `json:"field"`
	Value any    `json:"value"`
}

// Change is one captured row change inside a Batch.
type Change struct {
	Seq              int64          `json:"seq"`
	EventType        string         `json:"event_type"`
	Model            string         `json:"model"`
	Key              Key            `json:"key"`
	Data             map[string]any `json:"data,omitempty"`
	ShouldDelete     bool           `json:"should_delete"`
	OriginPlatformID int64          `json:"origin_platform_id"`
	ChangedAt        string         `json:"changed_at"`
}

// Batch is the body of a data delivery (POST {webhook_path}).
type Batch struct {
	BatchID          string   `json:"batch_id"`
	SourcePlatformID int64    `json:"source_platform_id"`
	SyncID           int64    `json:"sync_id"`
	Changes          []Change `json:"changes"`
}

// Accepted is the 202 answer to a stored batch: {"status":"accepted","batch_id":"…","count":N}.
type Accepted struct {
	Status  string `json:"status"`
	BatchID string `json:"batch_id"`
	Count   int    `json:"count"`
}

// Duplicate is the 200 answer to a batch whose id was stored before: {"status":"duplicate"}.
type Duplicate struct {
	Status string `json:"status"`
}

// SyncStatus is the health of one sync on one agent.
type SyncStatus struct {
	ID           int64   `json:"id"`
	Role         string  `json:"role"`
	Status       bool    `json:"status"`
	LastSync     *string `json:"last_sync"`
	Pending      int64   `json:"pending"`
	Sent         int64   `json:"sent"`
	Applied      int64   `json:"applied"`
	Failed       int64   `json:"failed"`
	LagMS        int64   `json:"lag_ms"`
	HasErrors    bool    `json:"has_errors"`
	ErrorMessage *string `json:"error_message"`
}

// Status is the body of GET /api/status.
type Status struct {
	PlatformID int64        `json:"platform_id"`
	Revision   int64        `json:"revision"`
	Version    string       `json:"version"`
	UptimeS    int64        `json:"uptime_s"`
	Syncs      []SyncStatus `json:"syncs"`
}

// Relations is the body of GET and PUT /api/relations/{model}/{key}.
type Relations struct {
	PlatformIDs []int64 `json:"platform_ids"`
}

// ReconcileStarted is the answer to POST /api/syncs/{id}/reconcile.
type ReconcileStarted struct {
	RunID string `json:"run_id"`
}

// FormatID renders a platform or sync id the way the protocol writes it in strings.
func FormatID(id int64) string { return strconv.FormatInt(id, 10) }
