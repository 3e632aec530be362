// Package fleet is the control center's side of the protocol: a Client that speaks to one
// agent (signed requests, pinned TLS, decoded error envelopes), the computation of each
// agent's desired state from a catalog snapshot, Sync Platforms (enroll and push to every
// agent concurrently), background status polling, domain look-ups and token rotation.
//
// Tokens never appear in an error, a log line or a desired state: agents receive pair keys
// derived from them, and only its own agent ever receives a platform's token (at
// enrollment).
package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// URL is the agent's base URL, e.g. https://shop.example:7443 (no path).
	URL string
	// Fingerprint is the pinned fingerprint of the agent's TLS certificate
	// (protocol.Fingerprint). Required for https URLs, ignored for http ones.
	Fingerprint string
	// SyncToken is the fleet's sync token; PlatformToken the token of the agent's platform.
	// Both are needed for every call but Health.
	SyncToken     string
	PlatformToken string
	// Timeout bounds each call, retries included, unless its context ends sooner
	// (default 30 s).
	Timeout time.Duration
	// Retries is how many more times an idempotent call is tried after a network error or
	// a 502/503/504 answer (default 2; negative for none). Every attempt is signed afresh.
	Retries int
	// RetryWait is the first wait between attempts, doubling with jitter (default 100 ms).
	RetryWait time.Duration
	// Signer signs requests; its zero value uses the wall clock and ULID message ids.
	Signer protocol.Signer
}

// Client speaks the protocol to one agent. It signs every request but GET /api/health with
// K_ctl (K_boot for enrollment), pins the agent's certificate, and returns the agent's error
// envelopes as *protocol.Error. It is safe for concurrent use.
type Client struct {
	raw         *rawClient
	url         string
	fingerprint string
	syncToken   string

	mu            sync.RWMutex
	platformToken string
}

// NewClient returns a client for one agent. An https URL needs a pinned fingerprint
// (ErrNotPinned otherwise; use Probe first). Tokens shorter than protocol.MinTokenLength
// are refused; tokens may be left empty for a client that only calls Health, and calls
// needing a missing token then fail with ErrMissingToken without being sent.
func NewClient(opts ClientOptions) (*Client, error) {
	base, tlsURL, err := parseAgentURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if opts.SyncToken != "" {
		if err := protocol.CheckToken(opts.SyncToken); err != nil {
			return nil, fmt.Errorf("sync token: %w", err)
		}
	}
	if opts.PlatformToken != "" {
		if err := protocol.CheckToken(opts.PlatformToken); err != nil {
			return nil, fmt.Errorf("platform token: %w", err)
		}
	}
	fp := ""
	if tlsURL {
		if opts.Fingerprint == "" {
			return nil, ErrNotPinned
		}
		if err := CheckFingerprint(opts.Fingerprint); err != nil {
			return nil, err
		}
		fp = opts.Fingerprint
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	retries := opts.Retries
	switch {
	case retries == 0:
		retries = defaultRetries
	case retries < 0:
		retries = 0
	}
	wait := opts.RetryWait
	if wait <= 0 {
		wait = defaultRetryWait
	}
	raw := newRawClient(base, pinnedTLS(fp, nil), timeout, retries, wait)
	raw.signer = opts.Signer
	return &Client{
		raw:           raw,
		url:           base,
		fingerprint:   fp,
		syncToken:     opts.SyncToken,
		platformToken: opts.PlatformToken,
	}, nil
}

// URL is the agent's base URL.
func (c *Client) URL() string { return c.url }

// Fingerprint is the pinned fingerprint, empty for a plain http agent.
func (c *Client) Fingerprint() string { return c.fingerprint }

// Close releases the client's idle connections.
func (c *Client) Close() { c.raw.close() }

// controlKey is K_ctl of the agent's platform, with the token currently in use, or nil
// without tokens.
func (c *Client) controlKey() []byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.platformToken == "" || c.syncToken == "" {
		return nil
	}
	return protocol.ControlKey(c.platformToken, c.syncToken)
}

func (c *Client) currentToken() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.platformToken
}

// control sends a control-plane call signed with K_ctl; in, when not nil, is sent as JSON.
func (c *Client) control(ctx context.Context, method, uri string, in, out any, retry bool) error {
	return c.signed(ctx, c.controlKey(), method, uri, in, out, retry)
}

func (c *Client) signed(ctx context.Context, key []byte, method, uri string, in, out any, retry bool) error {
	if len(key) == 0 {
		return fmt.Errorf("%s %s: the client has no token: %w", method, uri, ErrMissingToken)
	}
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, uri, err)
		}
		body = b
	}
	return c.raw.call(ctx, request{method: method, uri: uri, key: key, body: body, retry: retry}, out)
}

// Call sends any control-plane request, signed with K_ctl over method and uri (the path
// plus ?query, exactly as sent). in, when not nil, is sent as JSON; a 2xx answer is decoded
// into out when out is not nil. Only GET and PUT are retried.
func (c *Client) Call(ctx context.Context, method, uri string, in, out any) error {
	retry := method == http.MethodGet || method == http.MethodPut
	return c.control(ctx, method, uri, in, out, retry)
}

// Health calls GET /api/health, the only unsigned endpoint.
func (c *Client) Health(ctx context.Context) (protocol.Health, error) {
	var h protocol.Health
	err := c.raw.call(ctx, request{method: http.MethodGet, uri: "/api/health", retry: true}, &h)
	return h, err
}

// Enroll calls POST /api/enroll, signed with K_boot, handing the agent its platform and
// the client's platform token. Enrolling again with the same platform and token succeeds;
// an agent enrolled otherwise answers 409 already_enrolled.
func (c *Client) Enroll(ctx context.Context, platform protocol.Platform) (protocol.EnrollResponse, error) {
	var resp protocol.EnrollResponse
	token := c.currentToken()
	if token == "" {
		return resp, fmt.Errorf("enroll: the client has no platform token: %w", ErrMissingToken)
	}
	req := protocol.EnrollRequest{Platform: platform, PlatformToken: token}
	err := c.signed(ctx, protocol.BootKey(c.syncToken), http.MethodPost, "/api/enroll", req, &resp, true)
	return resp, err
}

// PutState calls PUT /api/state and returns the revision then in force. Putting the
// revision in force again succeeds; an older one gets 409 conflict. The agent answers with
// the whole state in force (peer keys redacted); only its revision is decoded, since with
// many platforms decoding the rest would cost more than the rest of the call (GetState
// returns it all).
func (c *Client) PutState(ctx context.Context, st protocol.State) (revision int64, err error) {
	var out revisionOnly
	err = c.control(ctx, http.MethodPut, "/api/state", st, &out, true)
	return int64(out), err
}

// revisionOnly decodes the "revision" member of a JSON object and stops there: agents
// write it first, so the rest of a large state is not even scanned.
type revisionOnly int64

func (r *revisionOnly) decodeBody(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("want a JSON object")
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return err
		}
		if key == "revision" {
			return dec.Decode((*int64)(r))
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return errors.New("no revision member")
}

// GetState calls GET /api/state: the state in force, peer keys redacted.
func (c *Client) GetState(ctx context.Context) (protocol.State, error) {
	return fetch[protocol.State](ctx, c, "/api/state")
}

// Status calls GET /api/status.
func (c *Client) Status(ctx context.Context) (protocol.Status, error) {
	return fetch[protocol.Status](ctx, c, "/api/status")
}

// Models calls GET /api/models: the tables of the agent's application database.
func (c *Client) Models(ctx context.Context) ([]protocol.Model, error) {
	out, err := fetch[protocol.ModelsResponse](ctx, c, "/api/models")
	return out.Models, err
}

// Capabilities are the transformers and sync handlers registered on an agent, sorted:
// what its syncs may name in use_transformer_class (when it is their source) and its
// sync_bindings (when it is their target).
type Capabilities struct {
	Transformers []string `json:"transformers"`
	Handlers     []string `json:"handlers"`
}

// Capabilities calls GET /api/models for the transformers and sync handlers the agent
// reports. An agent that reports none (an older one) answers empty lists.
func (c *Client) Capabilities(ctx context.Context) (Capabilities, error) {
	out, err := fetch[protocol.ModelsResponse](ctx, c, "/api/models")
	if err != nil {
		return Capabilities{}, err
	}
	caps := Capabilities{Transformers: out.Transformers, Handlers: out.Handlers}
	if caps.Transformers == nil {
		caps.Transformers = []string{}
	}
	if caps.Handlers == nil {
		caps.Handlers = []string{}
	}
	return caps, nil
}

// Platforms calls GET /api/platforms.
func (c *Client) Platforms(ctx context.Context) ([]protocol.Platform, error) {
	return fetch[[]protocol.Platform](ctx, c, "/api/platforms")
}

// Platform calls GET /api/platforms/{id}.
func (c *Client) Platform(ctx context.Context, id int64) (protocol.Platform, error) {
	return fetch[protocol.Platform](ctx, c, platformURI(id))
}

// CreatePlatform calls POST /api/platforms and returns the platform stored.
func (c *Client) CreatePlatform(ctx context.Context, p protocol.Platform) (protocol.Platform, error) {
	return send(ctx, c, http.MethodPost, "/api/platforms", p)
}

// UpdatePlatform calls PUT /api/platforms/{p.ID} and returns the platform stored.
func (c *Client) UpdatePlatform(ctx context.Context, p protocol.Platform) (protocol.Platform, error) {
	return send(ctx, c, http.MethodPut, platformURI(p.ID), p)
}

// DeletePlatform calls DELETE /api/platforms/{id}.
func (c *Client) DeletePlatform(ctx context.Context, id int64) error {
	return c.control(ctx, http.MethodDelete, platformURI(id), nil, nil, false)
}

// Syncs calls GET /api/syncs.
func (c *Client) Syncs(ctx context.Context) ([]protocol.Sync, error) {
	return fetch[[]protocol.Sync](ctx, c, "/api/syncs")
}

// Sync calls GET /api/syncs/{id}.
func (c *Client) Sync(ctx context.Context, id int64) (protocol.Sync, error) {
	return fetch[protocol.Sync](ctx, c, syncURI(id))
}

// CreateSync calls POST /api/syncs and returns the sync stored.
func (c *Client) CreateSync(ctx context.Context, s protocol.Sync) (protocol.Sync, error) {
	return send(ctx, c, http.MethodPost, "/api/syncs", s)
}

// UpdateSync calls PUT /api/syncs/{s.ID} and returns the sync stored.
func (c *Client) UpdateSync(ctx context.Context, s protocol.Sync) (protocol.Sync, error) {
	return send(ctx, c, http.MethodPut, syncURI(s.ID), s)
}

// DeleteSync calls DELETE /api/syncs/{id}.
func (c *Client) DeleteSync(ctx context.Context, id int64) error {
	return c.control(ctx, http.MethodDelete, syncURI(id), nil, nil, false)
}

// PlatformSyncs calls GET /api/platform/{id}/sync: the syncs where platform id is source
// or target.
func (c *Client) PlatformSyncs(ctx context.Context, platformID int64) ([]protocol.Sync, error) {
	return fetch[[]protocol.Sync](ctx, c, "/api/platform/"+protocol.FormatID(platformID)+"/sync")
}

// Reconcile calls POST /api/syncs/{id}/reconcile, starting a reconciliation run now, and
// returns the run's id.
func (c *Client) Reconcile(ctx context.Context, syncID int64) (string, error) {
	var out protocol.ReconcileStarted
	err := c.control(ctx, http.MethodPost, syncURI(syncID)+"/reconcile", nil, &out, false)
	if err == nil && out.RunID == "" {
		err = fmt.Errorf("%w: reconcile answer has no run_id", ErrBadResponse)
	}
	return out.RunID, err
}

func platformURI(id int64) string { return "/api/platforms/" + protocol.FormatID(id) }

func syncURI(id int64) string { return "/api/syncs/" + protocol.FormatID(id) }

// fetch is a signed GET decoded into a T.
func fetch[T any](ctx context.Context, c *Client, uri string) (T, error) {
	var out T
	err := c.control(ctx, http.MethodGet, uri, nil, &out, true)
	return out, err
}

// send is a signed POST or PUT of in, answered with a T; only PUT is retried.
func send[T any](ctx context.Context, c *Client, method, uri string, in T) (T, error) {
	var out T
	err := c.control(ctx, method, uri, in, &out, method == http.MethodPut)
	return out, err
}

// relationsURI is /api/relations/{model}/{key} with both segments escaped.
func relationsURI(model, key string) string {
	return "/api/relations/" + url.PathEscape(model) + "/" + url.PathEscape(key)
}

// Relations calls GET /api/relations/{model}/{key}: the platforms one record belongs to,
// key being the value of its unique identifier field.
func (c *Client) Relations(ctx context.Context, model, key string) (protocol.Relations, error) {
	return fetch[protocol.Relations](ctx, c, relationsURI(model, key))
}

// PutRelations calls PUT /api/relations/{model}/{key}, rewriting the record's platform
// relations, and returns them as stored.
func (c *Client) PutRelations(ctx context.Context, model, key string, rel protocol.Relations) (protocol.Relations, error) {
	return send(ctx, c, http.MethodPut, relationsURI(model, key), rel)
}

// rotateRequest is the body of POST /api/token.
type rotateRequest struct {
	PlatformToken string `json:"platform_token"`
}

// rotateResponse is the answer to POST /api/token.
type rotateResponse struct {
	Status string `json:"status"`
}

// RotationError reports a token rotation that did not complete. Stage tells how far it
// got: StageSend (the agent may or may not have received the new token; it still accepts
// the old one either way) or StageConfirm (the agent holds the new token but was not seen
// accepting it; until it sees a request signed with the new key it accepts the old one).
type RotationError struct {
	Stage string
	Err   error
}

// Stages of a RotationError.
const (
	StageSend    = "send"
	StageConfirm = "confirm"
)

// Error says which stage failed.
func (e *RotationError) Error() string {
	if e.Stage == StageSend {
		return "rotate token: send the new token: " + e.Err.Error()
	}
	return "rotate token: confirm with the new token: " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *RotationError) Unwrap() error { return e.Err }

// RotateToken replaces the platform token of the agent without a window in which it could
// be locked out: POST /api/token with the new token, signed with the old K_ctl (the agent
// then accepts the old and the new key until it sees a valid request signed with the new
// one), then GET /api/state signed with the new K_ctl to confirm. Only after the
// confirmation does the client switch to the new token; on any error it keeps the old one
// and returns a *RotationError. Store the new token only when this returns nil (see
// Syncer.RotatePlatformToken, which also survives a lost confirmation answer).
func (c *Client) RotateToken(ctx context.Context, newPlatformToken string) error {
	if err := protocol.CheckToken(newPlatformToken); err != nil {
		return fmt.Errorf("new platform token: %w", err)
	}
	if c.syncToken == "" {
		return fmt.Errorf("rotate token: the client has no sync token: %w", ErrMissingToken)
	}
	var sent rotateResponse
	err := c.control(ctx, http.MethodPost, "/api/token", rotateRequest{PlatformToken: newPlatformToken}, &sent, false)
	if err == nil && sent.Status != "rotated" {
		err = fmt.Errorf("%w: token rotation answered status %q", ErrBadResponse, sent.Status)
	}
	if err != nil {
		return &RotationError{Stage: StageSend, Err: err}
	}
	if err := c.confirmToken(ctx, newPlatformToken); err != nil {
		return &RotationError{Stage: StageConfirm, Err: err}
	}
	c.mu.Lock()
	c.platformToken = newPlatformToken
	c.mu.Unlock()
	return nil
}

// confirmToken calls GET /api/state signed with the K_ctl of token; an agent holding token
// as its pending new token takes this as the confirmation of the rotation.
func (c *Client) confirmToken(ctx context.Context, token string) error {
	key := protocol.ControlKey(token, c.syncToken)
	return c.signed(ctx, key, http.MethodGet, "/api/state", nil, nil, true)
}

// IsCode reports whether err is a *protocol.Error with the given code.
func IsCode(err error, code protocol.Code) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code == code
}
