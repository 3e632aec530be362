package app

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

func TestSyncService_CRUD(t *testing.T) {
	ta := mustOpenApp(t)
	a := ta.mustPlatform(t, "Shop", "https://shop.example:7443")
	b := ta.mustPlatform(t, "Blog", "https://blog.example:7443")
	in := SyncInput{SourcePlatformID: a.ID, SourceModel: "posts", TargetPlatformID: b.ID, TargetModel: "articles",
		SyncAllFields: true, Interval: 60, Status: true, Title: "ignored"}

	sy, err := ta.Syncs.Save(in)
	if err != nil {
		t.Fatal(err)
	}
	if sy.Title != "shop.example (posts) to blog.example (articles)" || sy.IfExists != "update" || sy.CreatedAt == "" {
		t.Fatalf("created %+v", sy)
	}

	in.ID, in.UsePlatformRelations, in.IfExists = sy.ID, true, "skip"
	sy, err = ta.Syncs.Save(in)
	if err != nil || sy.Title != "shop.example (posts) to blog.example (articles) by platform" || sy.IfExists != "skip" {
		t.Fatalf("updated %+v, %v", sy, err)
	}

	for _, tc := range []struct {
		src, dst int64
		want     int
	}{{0, 0, 1}, {a.ID, 0, 1}, {0, a.ID, 0}, {a.ID, b.ID, 1}, {b.ID, a.ID, 0}} {
		got, err := ta.Syncs.List(tc.src, tc.dst)
		if err != nil || len(got) != tc.want {
			t.Errorf("List(%d, %d) = %d syncs, %v; want %d", tc.src, tc.dst, len(got), err, tc.want)
		}
	}

	_, err = ta.Syncs.Save(SyncInput{SourcePlatformID: a.ID, SourceModel: "posts", TargetPlatformID: a.ID,
		TargetModel: "posts", SyncAllFields: true, Interval: 60})
	appErr(t, err, CodeValidation, "target_model")
	_, err = ta.Syncs.Save(SyncInput{SourcePlatformID: a.ID, SourceModel: "posts", TargetPlatformID: b.ID,
		TargetModel: "pages", Interval: 60})
	appErr(t, err, CodeValidation, "field_mappings")
	_, err = ta.Syncs.Save(SyncInput{ID: 999, SourcePlatformID: a.ID, SourceModel: "posts", TargetPlatformID: b.ID,
		TargetModel: "pages", SyncAllFields: true, Interval: 60})
	appErr(t, err, CodeNotFound, "")

	if err := ta.Syncs.Delete(sy.ID); err != nil {
		t.Fatal(err)
	}
	appErr(t, ta.Syncs.Delete(sy.ID), CodeNotFound, "")
}

func TestSyncService_ModelsAndCompatibility(t *testing.T) {
	ta := mustOpenApp(t)
	a, b, _ := ta.mustShopAndBlog(t)

	// Before Sync Platforms the agents are neither pinned nor enrolled.
	_, err := ta.Syncs.Models(a.ID)
	appErr(t, err, CodeNotPinned, "")

	if rep, err := ta.Fleet.SyncPlatforms(); err != nil || len(rep.Results) != 2 ||
		rep.Results[0].Result != ResultOK || rep.Results[1].Result != ResultOK {
		t.Fatalf("SyncPlatforms = %+v, %v", rep, err)
	}

	models, err := ta.Syncs.Models(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 1 || models[0].Name != "posts" || len(models[0].Columns) != 6 || models[0].Unique == nil {
		t.Fatalf("Models = %+v", models)
	}
	_, err = ta.Syncs.Models(999)
	appErr(t, err, CodeNotFound, "")

	rep, err := ta.Syncs.Compatibility(a.ID, "posts", b.ID, "articles")
	if err != nil {
		t.Fatal(err)
	}
	want := CompatReport{
		MissingOnTarget: []string{"body"},
		ExtraOnTarget:   []string{"author"},
		TypeDifferences: []TypeDifference{{Column: "views", SourceType: "INTEGER", TargetType: "REAL"}},
	}
	key := "ulid"
	want.KeyField = &key
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("Compatibility =\n%+v\nwant\n%+v", rep, want)
	}
	_, err = ta.Syncs.Compatibility(a.ID, "nope", b.ID, "articles")
	appErr(t, err, CodeValidation, "source_model")
	_, err = ta.Syncs.Compatibility(a.ID, "posts", b.ID, "nope")
	appErr(t, err, CodeValidation, "target_model")

	t.Run("missing platform token", func(t *testing.T) {
		if err := ta.secrets.Delete(context.Background(), secrets.PlatformKey(b.ID)); err != nil {
			t.Fatal(err)
		}
		_, err := ta.Syncs.Compatibility(a.ID, "posts", b.ID, "articles")
		appErr(t, err, CodeMissingToken, "")
	})
}

func TestSyncService_TransformerConfig(t *testing.T) {
	ta := mustOpenApp(t)
	a := ta.mustPlatform(t, "Shop", "https://shop.example:7443")
	b := ta.mustPlatform(t, "Blog", "https://blog.example:7443")
	name := "declarative"
	in := SyncInput{SourcePlatformID: a.ID, SourceModel: "posts", TargetPlatformID: b.ID, TargetModel: "articles",
		SyncAllFields: true, Interval: 60, Status: true, UseTransformerClass: &name,
		TransformerConfig: json.RawMessage(`{"drop": ["body"], "set": {"author": "shop"}}`)}
	sy, err := ta.Syncs.Save(in)
	if err != nil || string(sy.TransformerConfig) != `{"drop":["body"],"set":{"author":"shop"}}` {
		t.Fatalf("saved %s, %v", sy.TransformerConfig, err)
	}
	in.ID, in.TransformerConfig = sy.ID, json.RawMessage(`{"drop": "body"}`)
	_, err = ta.Syncs.Save(in)
	appErr(t, err, CodeValidation, "transformer_config")
	in.UseTransformerClass = nil
	in.TransformerConfig = json.RawMessage(`{"drop": ["body"]}`)
	_, err = ta.Syncs.Save(in)
	appErr(t, err, CodeValidation, "transformer_config")
}

// TestSyncService_CapabilitiesAndRelations asks a real agent which transformers and sync
// handlers it has, and reads and writes the platform relations of one of its records.
func TestSyncService_CapabilitiesAndRelations(t *testing.T) {
	ta := mustOpenApp(t)
	a, b, shop := ta.mustShopAndBlog(t)
	if rep, err := ta.Fleet.SyncPlatforms(); err != nil || rep.Results[0].Result != ResultOK {
		t.Fatalf("SyncPlatforms = %+v, %v", rep, err)
	}
	caps, err := ta.Syncs.Capabilities(a.ID)
	if err != nil || !reflect.DeepEqual(caps, Capabilities{Transformers: []string{"declarative", "lowercase_email"},
		Handlers: []string{"meta", "wp_user"}}) {
		t.Fatalf("Capabilities = %+v, %v", caps, err)
	}

	if _, err := shop.App.Exec(`INSERT INTO posts (ulid, title) VALUES ('01HZREL', 'related')`); err != nil {
		t.Fatal(err)
	}
	if ids, err := ta.Syncs.Relations(a.ID, "posts", "01HZREL"); err != nil || len(ids) != 0 || ids == nil {
		t.Fatalf("Relations = %v, %v", ids, err)
	}
	if ids, err := ta.Syncs.SetRelations(a.ID, "posts", " 01HZREL ", []int64{b.ID, a.ID}); err != nil ||
		!reflect.DeepEqual(ids, []int64{a.ID, b.ID}) {
		t.Fatalf("SetRelations = %v, %v", ids, err)
	}
	if ids, err := ta.Syncs.Relations(a.ID, "posts", "01HZREL"); err != nil || !reflect.DeepEqual(ids, []int64{a.ID, b.ID}) {
		t.Fatalf("Relations = %v, %v", ids, err)
	}
	var n int
	if err := shop.App.QueryRow(`SELECT COUNT(*) FROM model_platform WHERE model_type = 'posts'`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("model_platform rows = %d, %v", n, err)
	}

	_, err = ta.Syncs.Relations(a.ID, "posts", "nope")
	appErr(t, err, CodeNotFound, "")
	_, err = ta.Syncs.Relations(a.ID, "nope", "x")
	appErr(t, err, string(protocol.CodeUnknownModel), "")
	_, err = ta.Syncs.Relations(a.ID, "posts", " ")
	appErr(t, err, CodeValidation, "key")
	_, err = ta.Syncs.SetRelations(a.ID, "posts", "01HZREL", []int64{999})
	appErr(t, err, CodeValidation, "platform_ids")
}

func TestSyncService_Reconcile(t *testing.T) {
	ta := mustOpenApp(t)
	syncToken := ta.mustSyncToken(t)
	var fa *fakeAgent
	src := ta.mustPlatform(t, "Shop", "http://127.0.0.1:1")
	dst := ta.mustPlatform(t, "Blog", "http://127.0.0.1:2")
	token, _ := ta.Platforms.RevealToken(src.ID)
	fa = startFakeAgent(t, token, syncToken, func(w http.ResponseWriter, r *http.Request) {
		protocol.WriteJSON(w, http.StatusAccepted, protocol.ReconcileStarted{RunID: "run-" + r.URL.Query().Get("dry_run")})
	})
	if _, err := ta.Platforms.Save(PlatformInput{ID: src.ID, Name: src.Name, Domain: src.Domain, AgentURL: fa.srv.URL}); err != nil {
		t.Fatal(err)
	}
	sy, err := ta.Syncs.Save(SyncInput{SourcePlatformID: src.ID, SourceModel: "posts", TargetPlatformID: dst.ID,
		TargetModel: "posts", SyncAllFields: true, Interval: 60, Status: true})
	if err != nil {
		t.Fatal(err)
	}

	if id, err := ta.Syncs.Reconcile(sy.ID, false); err != nil || id != "run-" {
		t.Fatalf("Reconcile = %q, %v", id, err)
	}
	if id, err := ta.Syncs.Reconcile(sy.ID, true); err != nil || id != "run-true" {
		t.Fatalf("Reconcile dry run = %q, %v", id, err)
	}
	uris, verified := fa.requests()
	wantURIs := []string{
		"POST /api/syncs/" + protocol.FormatID(sy.ID) + "/reconcile",
		"POST /api/syncs/" + protocol.FormatID(sy.ID) + "/reconcile?dry_run=true",
	}
	if !reflect.DeepEqual(uris, wantURIs) || !reflect.DeepEqual(verified, []bool{true, true}) {
		t.Fatalf("agent saw %v (verified %v), want %v signed", uris, verified, wantURIs)
	}
	_, err = ta.Syncs.Reconcile(999, false)
	appErr(t, err, CodeNotFound, "")

	t.Run("agent error passes through", func(t *testing.T) {
		other, _ := ta.Platforms.GenerateToken()
		if err := ta.secrets.Set(context.Background(), secrets.PlatformKey(src.ID), other); err != nil {
			t.Fatal(err)
		}
		_, err := ta.Syncs.Reconcile(sy.ID, false)
		e := appErr(t, err, string(protocol.CodeUnauthorized), "")
		if e.Message != "bad signature" {
			t.Errorf("message %q, want the agent's", e.Message)
		}
	})
}
