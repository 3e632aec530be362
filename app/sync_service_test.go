package app

import (
	"context"
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
