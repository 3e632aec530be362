package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/mooxsync/mooxsync/backend/apply"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// Data-plane endpoints of the target agent, below its webhook path: POST
// {webhook_path}/reconcile/hashes and so on, signed like a delivery (Standard Webhooks,
// K_pair of source -> target, x-mooxsync-platform: the source's id).
const (
	EndpointHashes = "/reconcile/hashes"
	EndpointKeys   = "/reconcile/keys"
	EndpointOwned  = "/reconcile/owned"
)

// Limits a Target enforces on requests.
const (
	MaxRanges  = 16384                     // ranges per hashes or keys request
	MaxColumns = 1000                      // columns per request
	MaxKeys    = 10000                     // keys per keys response and per owned request
	maxBody    = protocol.DefaultBodyLimit // bytes of a request body Serve decodes
)

// Range is a key range on the wire: keys k with lo < k <= hi in byte order; an absent or
// empty lo means from the first key, an absent or empty hi to the last.
type Range struct {
	Lo string `json:"lo,omitempty"`
	Hi string `json:"hi,omitempty"`
}

// HashesRequest asks the target for the digest of each range of its rows, projected on
// Columns (body of POST {webhook_path}/reconcile/hashes).
type HashesRequest struct {
	SyncID int64 `json:"sync_id"`
	// Key is the target key column (the sync's key field as apply maps it).
	Key string `json:"key"`
	// Columns are the target columns hashed, in this order (the key column among them).
	Columns []string `json:"columns"`
	// Ranges are ascending and do not overlap.
	Ranges []Range `json:"ranges"`
}

// HashesResponse answers a HashesRequest: Hashes[i] is the digest of Ranges[i].
type HashesResponse struct {
	Hashes []RangeHash `json:"hashes"`
}

// RangeHash is the row count and digest of one range: the sum modulo 2^128 of the rows'
// digests (sqldb.RowHasher), standard base64; all zero for no rows.
type RangeHash struct {
	Count int64        `json:"count"`
	Hash  sqldb.Digest `json:"hash"`
}

// KeysRequest asks the target for the key and digest of every row in Ranges (body of POST
// {webhook_path}/reconcile/keys).
type KeysRequest struct {
	SyncID  int64    `json:"sync_id"`
	Key     string   `json:"key"`
	Columns []string `json:"columns"`
	Ranges  []Range  `json:"ranges"`
	// Limit caps the keys in the answer (default and maximum MaxKeys).
	Limit int `json:"limit,omitempty"`
}

// KeysResponse answers a KeysRequest with the rows' keys in byte order. More is true when
// Limit cut the answer short: the rest comes from asking again from the last key.
type KeysResponse struct {
	Keys []KeyHash `json:"keys"`
	More bool      `json:"more,omitempty"`
}

// KeyHash is one target row's key text and digest.
type KeyHash struct {
	Key  string       `json:"key"`
	Hash sqldb.Digest `json:"hash"`
}

// OwnedRequest asks which of Keys the sync owns on the target: rows it wrote, which a
// reconciliation may delete (body of POST {webhook_path}/reconcile/owned).
type OwnedRequest struct {
	SyncID int64    `json:"sync_id"`
	Keys   []string `json:"keys"`
}

// OwnedResponse lists the owned keys, in the order asked.
type OwnedResponse struct {
	Keys []string `json:"keys"`
}

// Peer is the target side of a reconciliation, as the source sees it.
type Peer interface {
	Hashes(ctx context.Context, req HashesRequest) (HashesResponse, error)
	Keys(ctx context.Context, req KeysRequest) (KeysResponse, error)
	Owned(ctx context.Context, req OwnedRequest) (OwnedResponse, error)
}

// ClientPeer is a Peer that posts JSON bodies to the target agent: Post sends body to the
// endpoint (EndpointHashes, …) below the target's webhook path, signed, and returns the
// 200 answer's body (an error for any other status).
type ClientPeer struct {
	Post func(ctx context.Context, endpoint string, body []byte) ([]byte, error)
}

var _ Peer = ClientPeer{}

// Hashes implements Peer.
func (c ClientPeer) Hashes(ctx context.Context, req HashesRequest) (resp HashesResponse, err error) {
	return resp, c.call(ctx, EndpointHashes, req, &resp)
}

// Keys implements Peer.
func (c ClientPeer) Keys(ctx context.Context, req KeysRequest) (resp KeysResponse, err error) {
	return resp, c.call(ctx, EndpointKeys, req, &resp)
}

// Owned implements Peer.
func (c ClientPeer) Owned(ctx context.Context, req OwnedRequest) (resp OwnedResponse, err error) {
	return resp, c.call(ctx, EndpointOwned, req, &resp)
}

func (c ClientPeer) call(ctx context.Context, endpoint string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	out, err := c.Post(ctx, endpoint, body)
	if err != nil {
		return fmt.Errorf("reconcile %s: %w", endpoint, err)
	}
	if err := json.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("reconcile %s: answer: %w", endpoint, err)
	}
	return nil
}

// LocalPeer is a Peer over a Target in this process, for sync s: requests and answers go
// through JSON as on the wire.
func LocalPeer(t *Target, s protocol.Sync) ClientPeer {
	return ClientPeer{Post: func(ctx context.Context, endpoint string, body []byte) ([]byte, error) {
		return t.Serve(ctx, s, endpoint, body)
	}}
}

// Target answers reconciliation requests from the target platform's application database.
type Target struct {
	db     *sqldb.DB
	unique []string

	mu    sync.Mutex
	owned bool // mooxsync_owned exists
}

// NewTarget returns a Target reading db; cfg holds the agent's identifier settings (empty
// lists: Moox's defaults), which tell what a sync with field mappings may match by.
func NewTarget(db *sqldb.DB, cfg apply.Config) *Target {
	unique := cfg.UniqueIdentifierFields
	if len(unique) == 0 {
		unique = apply.DefaultUniqueIdentifierFields
	}
	return &Target{db: db, unique: unique}
}

// Serve decodes a request body for endpoint (unknown fields refused), answers it for sync
// s and returns the answer's body. The caller has verified the signature and that s is an
// enabled sync whose source is the sender and whose target is this platform. Errors are
// *protocol.Error where the request is at fault (bad_request, unknown_column, not_found
// for an unknown endpoint).
func (t *Target) Serve(ctx context.Context, s protocol.Sync, endpoint string, body []byte) ([]byte, error) {
	var (
		out any
		err error
	)
	switch endpoint {
	case EndpointHashes:
		var req HashesRequest
		if err = decode(body, &req); err == nil {
			out, err = t.Hashes(ctx, s, req)
		}
	case EndpointKeys:
		var req KeysRequest
		if err = decode(body, &req); err == nil {
			out, err = t.Keys(ctx, s, req)
		}
	case EndpointOwned:
		var req OwnedRequest
		if err = decode(body, &req); err == nil {
			out, err = t.Owned(ctx, s, req)
		}
	default:
		return nil, protocol.Errorf(protocol.CodeNotFound, "no reconcile endpoint %q", endpoint)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

func decode(body []byte, v any) error {
	if len(body) > maxBody {
		return protocol.Errorf(protocol.CodeTooLarge, "request body over %d bytes", maxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "request body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return protocol.Errorf(protocol.CodeBadRequest, "request body: data after the JSON value")
	}
	return nil
}

// Hashes answers a HashesRequest for sync s.
func (t *Target) Hashes(ctx context.Context, s protocol.Sync, req HashesRequest) (HashesResponse, error) {
	ranges, err := t.checkRequest(s, req.SyncID, req.Key, req.Columns, req.Ranges)
	if err != nil {
		return HashesResponse{}, err
	}
	hs, err := t.db.Hashes(ctx, s.TargetModel, req.Key, req.Columns, ranges)
	if err != nil {
		return HashesResponse{}, err
	}
	out := HashesResponse{Hashes: make([]RangeHash, len(hs))}
	for i, h := range hs {
		out.Hashes[i] = RangeHash{Count: h.Count, Hash: h.Hash}
	}
	return out, nil
}

// Keys answers a KeysRequest for sync s: the first Limit keys of the ranges in byte order.
func (t *Target) Keys(ctx context.Context, s protocol.Sync, req KeysRequest) (KeysResponse, error) {
	ranges, err := t.checkRequest(s, req.SyncID, req.Key, req.Columns, req.Ranges)
	if err != nil {
		return KeysResponse{}, err
	}
	limit := req.Limit
	if limit <= 0 || limit > MaxKeys {
		limit = MaxKeys
	}
	out := KeysResponse{Keys: []KeyHash{}}
	err = t.db.ScanDigests(ctx, s.TargetModel, req.Key, req.Columns, ranges, true, func(_ int, k string, d sqldb.Digest) error {
		if len(out.Keys) == limit {
			out.More = true
			return errStop
		}
		out.Keys = append(out.Keys, KeyHash{Key: k, Hash: d})
		return nil
	})
	if err != nil && err != errStop {
		return KeysResponse{}, err
	}
	return out, nil
}

// Owned answers an OwnedRequest for sync s.
func (t *Target) Owned(ctx context.Context, s protocol.Sync, req OwnedRequest) (OwnedResponse, error) {
	if req.SyncID != s.ID {
		return OwnedResponse{}, protocol.Errorf(protocol.CodeBadRequest, "request is for sync %d, not %d", req.SyncID, s.ID)
	}
	if len(req.Keys) > MaxKeys {
		return OwnedResponse{}, protocol.Errorf(protocol.CodeBadRequest, "more than %d keys", MaxKeys)
	}
	if err := t.ensureOwned(ctx); err != nil {
		return OwnedResponse{}, err
	}
	keys, err := t.db.OwnedAmong(ctx, s.ID, s.TargetModel, req.Keys)
	if err != nil {
		return OwnedResponse{}, err
	}
	return OwnedResponse{Keys: keys}, nil
}

// ensureOwned creates mooxsync_owned once (a target whose apply never ran has none: it
// owns nothing).
func (t *Target) ensureOwned(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.owned {
		return nil
	}
	if err := t.db.EnsureOwned(ctx); err != nil {
		return err
	}
	t.owned = true
	return nil
}

// checkRequest validates what a hashes or keys request may read: only the sync's target
// model; with field_mappings only the mapped columns and unique identifier fields (an
// unmapped key matches by its own name); sane sizes. Column names are then checked against
// the live schema by sqldb.
func (t *Target) checkRequest(s protocol.Sync, syncID int64, key string, cols []string, ranges []Range) ([]sqldb.KeyRange, error) {
	switch {
	case syncID != s.ID:
		return nil, protocol.Errorf(protocol.CodeBadRequest, "request is for sync %d, not %d", syncID, s.ID)
	case key == "":
		return nil, protocol.Errorf(protocol.CodeBadRequest, "no key column")
	case len(cols) == 0 || len(cols) > MaxColumns:
		return nil, protocol.Errorf(protocol.CodeBadRequest, "want 1 to %d columns, got %d", MaxColumns, len(cols))
	case len(ranges) > MaxRanges:
		return nil, protocol.Errorf(protocol.CodeBadRequest, "more than %d ranges", MaxRanges)
	}
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		if seen[c] {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "column %q named twice", c)
		}
		seen[c] = true
	}
	if !s.SyncAllFields {
		for _, c := range append([]string{key}, cols...) {
			if !slices.Contains(t.unique, c) && !mapsTo(s, c) {
				return nil, protocol.Errorf(protocol.CodeBadRequest, "column %q is not written by sync %d", c, s.ID)
			}
		}
	}
	out := make([]sqldb.KeyRange, len(ranges))
	for i, r := range ranges {
		out[i] = sqldb.KeyRange{Lo: r.Lo, Hi: r.Hi}
	}
	return out, nil
}

// mapsTo reports whether a field mapping of s writes column c.
func mapsTo(s protocol.Sync, c string) bool {
	for _, t := range s.FieldMappings {
		if t == c {
			return true
		}
	}
	return false
}
