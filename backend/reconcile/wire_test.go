package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/apply"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/reconcile"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// TestWire_Shapes pins the JSON of the data-plane contract (docs/protocol.md).
func TestWire_Shapes(t *testing.T) {
	var d sqldb.Digest
	d[0] = 1
	for _, tc := range []struct {
		v    any
		want string
	}{
		{reconcile.HashesRequest{SyncID: 7, Key: "ulid", Columns: []string{"title", "ulid"}, Ranges: []reconcile.Range{{Hi: "01HZ"}, {Lo: "01HZ"}}},
			`{"sync_id":7,"key":"ulid","columns":["title","ulid"],"ranges":[{"hi":"01HZ"},{"lo":"01HZ"}]}`},
		{reconcile.HashesResponse{Hashes: []reconcile.RangeHash{{Count: 2, Hash: d}, {}}},
			`{"hashes":[{"count":2,"hash":"AQAAAAAAAAAAAAAAAAAAAA=="},{"count":0,"hash":"AAAAAAAAAAAAAAAAAAAAAA=="}]}`},
		{reconcile.KeysRequest{SyncID: 7, Key: "ulid", Columns: []string{"ulid"}, Ranges: []reconcile.Range{{Lo: "a", Hi: "b"}}, Limit: 10},
			`{"sync_id":7,"key":"ulid","columns":["ulid"],"ranges":[{"lo":"a","hi":"b"}],"limit":10}`},
		{reconcile.KeysResponse{Keys: []reconcile.KeyHash{{Key: "a1", Hash: d}}, More: true},
			`{"keys":[{"key":"a1","hash":"AQAAAAAAAAAAAAAAAAAAAA=="}],"more":true}`},
		{reconcile.OwnedRequest{SyncID: 7, Keys: []string{"a1", "a2"}}, `{"sync_id":7,"keys":["a1","a2"]}`},
		{reconcile.OwnedResponse{Keys: []string{"a2"}}, `{"keys":["a2"]}`},
	} {
		got, err := json.Marshal(tc.v)
		if err != nil || string(got) != tc.want {
			t.Errorf("%T:\n got  %s %v\n want %s", tc.v, got, err, tc.want)
		}
	}
}

func TestTarget_Serve(t *testing.T) {
	db := sqldbtest.MustOpenSQLite(t)
	sqldbtest.CreatePosts(t, db, "posts")
	fill(t, db, 0, 10)
	ctx := context.Background()
	target := reconcile.NewTarget(db, apply.Config{})
	mapped := postsSync
	mapped.SyncAllFields = false
	mapped.FieldMappings = map[string]string{"ulid": "ulid", "title": "title"}

	ok := func(s protocol.Sync, endpoint, body string) string {
		t.Helper()
		out, err := target.Serve(ctx, s, endpoint, []byte(body))
		if err != nil {
			t.Fatalf("%s %s: %v", endpoint, body, err)
		}
		return string(out)
	}
	// Every row of the table, in one range and in two.
	one := ok(postsSync, reconcile.EndpointHashes, `{"sync_id":7,"key":"ulid","columns":["title","ulid"],"ranges":[{}]}`)
	var h reconcile.HashesResponse
	if err := json.Unmarshal([]byte(one), &h); err != nil || len(h.Hashes) != 1 || h.Hashes[0].Count != 10 {
		t.Fatalf("hashes = %s", one)
	}
	keys := ok(mapped, reconcile.EndpointKeys, `{"sync_id":7,"key":"ulid","columns":["title","ulid"],"ranges":[{}],"limit":3}`)
	var k reconcile.KeysResponse
	if err := json.Unmarshal([]byte(keys), &k); err != nil || len(k.Keys) != 3 || !k.More || k.Keys[0].Key > k.Keys[1].Key {
		t.Fatalf("keys = %s", keys)
	}
	if got := ok(postsSync, reconcile.EndpointOwned, `{"sync_id":7,"keys":["x"]}`); got != `{"keys":[]}` {
		t.Errorf("owned = %s", got)
	}

	for _, tc := range []struct {
		name     string
		s        protocol.Sync
		endpoint string
		body     string
		code     protocol.Code
	}{
		{"unknown field", postsSync, reconcile.EndpointHashes, `{"sync_id":7,"key":"ulid","columns":["ulid"],"ranges":[],"extra":1}`, protocol.CodeBadRequest},
		{"trailing data", postsSync, reconcile.EndpointOwned, `{"sync_id":7,"keys":[]} {}`, protocol.CodeBadRequest},
		{"other sync", postsSync, reconcile.EndpointHashes, `{"sync_id":8,"key":"ulid","columns":["ulid"],"ranges":[]}`, protocol.CodeBadRequest},
		{"other sync owned", postsSync, reconcile.EndpointOwned, `{"sync_id":8,"keys":[]}`, protocol.CodeBadRequest},
		{"no columns", postsSync, reconcile.EndpointHashes, `{"sync_id":7,"key":"ulid","columns":[],"ranges":[]}`, protocol.CodeBadRequest},
		{"column twice", postsSync, reconcile.EndpointHashes, `{"sync_id":7,"key":"ulid","columns":["ulid","ulid"],"ranges":[]}`, protocol.CodeBadRequest},
		{"unmapped column", mapped, reconcile.EndpointKeys, `{"sync_id":7,"key":"ulid","columns":["body"],"ranges":[]}`, protocol.CodeBadRequest},
		{"unknown column", postsSync, reconcile.EndpointHashes, `{"sync_id":7,"key":"ulid","columns":["nope"],"ranges":[]}`, protocol.CodeUnknownColumn},
		{"crafted key", postsSync, reconcile.EndpointHashes, `{"sync_id":7,"key":"x\"; DROP TABLE posts; --","columns":["ulid"],"ranges":[]}`, protocol.CodeUnknownColumn},
		{"overlapping ranges", postsSync, reconcile.EndpointHashes, `{"sync_id":7,"key":"ulid","columns":["ulid"],"ranges":[{"hi":"b"},{"lo":"a"}]}`, protocol.CodeBadRequest},
		{"unknown endpoint", postsSync, "/reconcile/rows", `{}`, protocol.CodeNotFound},
	} {
		_, err := target.Serve(ctx, tc.s, tc.endpoint, []byte(tc.body))
		if protocol.CodeOf(err) != tc.code {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
		}
	}
	too := `{"sync_id":7,"key":"ulid","columns":["ulid"],"ranges":[` + strings.Repeat(`{},`, reconcile.MaxRanges) + `{}]}`
	if _, err := target.Serve(ctx, postsSync, reconcile.EndpointHashes, []byte(too)); protocol.CodeOf(err) != protocol.CodeBadRequest {
		t.Errorf("too many ranges: %v", err)
	}
}

func TestNewProjection(t *testing.T) {
	cols := []string{"id", "ulid", "uuid", "slug", "title", "body"}
	for _, tc := range []struct {
		name   string
		s      protocol.Sync
		fields []string
		want   string // key>targetkey: source>target, …
		err    bool
	}{
		{"all fields: local ids dropped, unique kept", protocol.Sync{SyncAllFields: true}, cols,
			"ulid>ulid: body>body slug>slug title>title ulid>ulid uuid>uuid", false},
		{"mappings", protocol.Sync{FieldMappings: map[string]string{"ulid": "uid", "title": "headline", "id": "legacy_id"}}, cols,
			"ulid>uid: title>headline ulid>uid", false},
		{"unmapped key keeps its name", protocol.Sync{FieldMappings: map[string]string{"title": "headline"}}, cols,
			"ulid>ulid: title>headline ulid>ulid", false},
		{"a later unique field is the key", protocol.Sync{SyncAllFields: true}, []string{"id", "slug", "title"},
			"slug>slug: slug>slug title>title", false},
		{"no unique field", protocol.Sync{SyncAllFields: true}, []string{"id", "body"}, "", true},
		{"two fields to one column", protocol.Sync{FieldMappings: map[string]string{"title": "x", "body": "x"}}, cols, "", true},
	} {
		p, err := reconcile.NewProjection(tc.s, tc.fields, apply.Config{})
		if tc.err {
			if err == nil {
				t.Errorf("%s: want an error, got %+v", tc.name, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var parts []string
		for _, f := range p.Fields {
			parts = append(parts, f.Source+">"+f.Target)
		}
		if got := p.Key + ">" + p.TargetKey + ": " + strings.Join(parts, " "); got != tc.want {
			t.Errorf("%s:\n got  %s\n want %s", tc.name, got, tc.want)
		}
	}
}

// TestClientPeer_HTTP runs a reconciliation over HTTP, the target answering with
// Target.Serve behind a handler as the agent mounts it (signing left out), errors in the
// protocol's envelope.
func TestClientPeer_HTTP(t *testing.T) {
	src := sqldbtest.MustOpenSQLite(t)
	dst := sqldbtest.MustOpenSQLite(t)
	sqldbtest.CreatePosts(t, src, "posts")
	sqldbtest.CreatePosts(t, dst, "posts")
	fill(t, src, 0, 200)
	f := newFixture(t, src, dst, postsSync)
	target := reconcile.NewTarget(dst, apply.Config{})
	const webhook = "/sync-webhook"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		endpoint, ok := strings.CutPrefix(r.URL.Path, webhook)
		if !ok || r.Method != http.MethodPost {
			protocol.WriteError(w, protocol.Errorf(protocol.CodeNotFound, "no route"))
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			protocol.WriteError(w, err)
			return
		}
		out, err := target.Serve(r.Context(), postsSync, endpoint, body)
		if err != nil {
			protocol.WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	}))
	defer srv.Close()
	peer := reconcile.ClientPeer{Post: func(ctx context.Context, endpoint string, body []byte) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+webhook+endpoint, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, protocol.DecodeError(resp.StatusCode, out)
		}
		return out, nil
	}}
	ctx := context.Background()
	source, err := reconcile.NewSource(ctx, src, postsSync, apply.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := reconcile.Run(ctx, source, peer, reconcile.Options{Repair: f})
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, "over HTTP", rep, counts{Inserted: 200})

	// A target without a column the source sends: the error crosses the wire with its code.
	sqldbtest.MustExec(t, src, map[string]string{"": `ALTER TABLE posts ADD COLUMN subtitle TEXT`})
	src.Refresh("posts")
	source, err = reconcile.NewSource(ctx, src, postsSync, apply.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = reconcile.Run(ctx, source, peer, reconcile.Options{Repair: f})
	if protocol.CodeOf(err) != protocol.CodeUnknownColumn || len(rep.Errors) != 1 {
		t.Errorf("missing column: %v, report errors %q", err, rep.Errors)
	}
}
