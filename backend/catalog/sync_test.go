package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

func TestTitle(t *testing.T) {
	tests := []struct {
		relations bool
		want      string
	}{
		{false, "shop.example (posts) to blog.example (articles)"},
		{true, "shop.example (posts) to blog.example (articles) by platform"},
	}
	for _, tt := range tests {
		if got := catalog.Title("shop.example", "posts", "blog.example", "articles", tt.relations); got != tt.want {
			t.Errorf("Title(relations=%v) = %q, want %q", tt.relations, got, tt.want)
		}
	}
}

func TestStore_CreateSync(t *testing.T) {
	ctx := context.Background()

	t.Run("StoresWithGeneratedTitle", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		in := catalog.Sync{
			SourcePlatformID: shop.ID, SourceModel: " posts ", TargetPlatformID: blog.ID, TargetModel: "articles",
			UsePlatformRelations: true, SyncIDs: []string{" 01HZ ", "7", "7"}, SyncAllFields: false,
			FieldMappings: map[string]string{"title": "headline", " body ": "content"}, UseTransformerClass: ptr(" wp_user "),
			Interval: 15, Status: true, Title: "ignored", SyncableID: ptr(int64(3)), SyncableType: ptr("App\\Models\\Post"),
			HasErrors: true, ErrorMessage: ptr("ignored"),
		}
		sy, err := s.CreateSync(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if want := "shop.example (posts) to blog.example (articles) by platform"; sy.Title != want {
			t.Fatalf("title = %q, want %q", sy.Title, want)
		}
		if sy.SourceModel != "posts" || sy.IfExists != protocol.IfExistsUpdate || strings.Join(sy.SyncIDs, ",") != "01HZ,7" ||
			sy.FieldMappings["body"] != "content" || len(sy.FieldMappings) != 2 || *sy.UseTransformerClass != "wp_user" ||
			*sy.SyncableID != 3 || *sy.SyncableType != "App\\Models\\Post" {
			t.Fatalf("stored sync = %s", mustJSON(t, sy))
		}
		if sy.HasErrors || sy.ErrorMessage != nil || sy.LastSync != nil {
			t.Fatalf("observed fields taken from input: %s", mustJSON(t, sy))
		}
		got, err := s.Sync(ctx, sy.ID)
		if err != nil || !jsonEqual(t, got, sy) {
			t.Fatalf("Sync(%d) = %s, %v", sy.ID, mustJSON(t, got), err)
		}
		if rev := mustRevision(t, s); rev != 3 {
			t.Fatalf("revision = %d, want 3", rev)
		}
	})

	t.Run("SamePlatformOtherModel", func(t *testing.T) {
		s := MustOpen(t)
		shop := MustCreatePlatform(t, s, "Shop")
		sy, err := s.CreateSync(ctx, catalog.Sync{SourcePlatformID: shop.ID, SourceModel: "posts", TargetPlatformID: shop.ID,
			TargetModel: "archive", SyncAllFields: true, Interval: 1})
		if err != nil {
			t.Fatal(err)
		}
		if sy.Title != "shop.example (posts) to shop.example (archive)" {
			t.Fatalf("title = %q", sy.Title)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		valid := func() catalog.Sync {
			return catalog.Sync{SourcePlatformID: shop.ID, SourceModel: "posts", TargetPlatformID: blog.ID,
				TargetModel: "posts", SyncAllFields: true, Interval: 60}
		}
		tests := []struct {
			name  string
			edit  func(s *catalog.Sync)
			field string
		}{
			{"NoSource", func(s *catalog.Sync) { s.SourcePlatformID = 0 }, "source_platform_id"},
			{"MissingSource", func(s *catalog.Sync) { s.SourcePlatformID = 99 }, "source_platform_id"},
			{"NoSourceModel", func(s *catalog.Sync) { s.SourceModel = " " }, "source_model"},
			{"SourceModelNotIdent", func(s *catalog.Sync) { s.SourceModel = "posts; DROP TABLE x" }, "source_model"},
			{"SourceModelLeadingDigit", func(s *catalog.Sync) { s.SourceModel = "1posts" }, "source_model"},
			{"SourceModelTooLong", func(s *catalog.Sync) { s.SourceModel = strings.Repeat("p", 65) }, "source_model"},
			{"NoTarget", func(s *catalog.Sync) { s.TargetPlatformID = 0 }, "target_platform_id"},
			{"MissingTarget", func(s *catalog.Sync) { s.TargetPlatformID = 99 }, "target_platform_id"},
			{"NoTargetModel", func(s *catalog.Sync) { s.TargetModel = "" }, "target_model"},
			{"TargetModelQuoted", func(s *catalog.Sync) { s.TargetModel = `"posts"` }, "target_model"},
			{"SamePlatformAndModel", func(s *catalog.Sync) { s.TargetPlatformID = shop.ID }, "target_model"},
			{"SamePlatformAndModelIgnoringCase", func(s *catalog.Sync) { s.TargetPlatformID, s.TargetModel = shop.ID, "POSTS" }, "target_model"},
			{"IfExists", func(s *catalog.Sync) { s.IfExists = "replace" }, "if_exists"},
			{"ZeroInterval", func(s *catalog.Sync) { s.Interval = 0 }, "interval"},
			{"NegativeInterval", func(s *catalog.Sync) { s.Interval = -5 }, "interval"},
			{"NoMappingsWithoutAllFields", func(s *catalog.Sync) { s.SyncAllFields = false }, "field_mappings"},
			{"EmptyMappingsWithoutAllFields", func(s *catalog.Sync) { s.SyncAllFields, s.FieldMappings = false, map[string]string{} }, "field_mappings"},
			{"MappingSourceNotIdent", func(s *catalog.Sync) { s.FieldMappings = map[string]string{"a b": "c"} }, "field_mappings"},
			{"MappingTargetEmpty", func(s *catalog.Sync) { s.FieldMappings = map[string]string{"a": ""} }, "field_mappings"},
			{"MappingTwoToOne", func(s *catalog.Sync) { s.FieldMappings = map[string]string{"a": "x", "b": "X"} }, "field_mappings"},
			{"MappingSourceTwice", func(s *catalog.Sync) { s.FieldMappings = map[string]string{"a": "x", " a": "y"} }, "field_mappings"},
			{"EmptySyncID", func(s *catalog.Sync) { s.SyncIDs = []string{"1", " "} }, "sync_ids"},
			{"TransformerWithSpace", func(s *catalog.Sync) { s.UseTransformerClass = ptr("my transformer") }, "use_transformer_class"},
			{"TransformerConfigWithoutTransformer", func(s *catalog.Sync) { s.TransformerConfig = json.RawMessage(`{"drop":["a"]}`) }, "transformer_config"},
			{"TransformerConfigNotObject", func(s *catalog.Sync) {
				s.UseTransformerClass, s.TransformerConfig = ptr("custom"), json.RawMessage(`["a"]`)
			}, "transformer_config"},
			{"DeclarativeConfigRefused", func(s *catalog.Sync) {
				s.UseTransformerClass, s.TransformerConfig = ptr("declarative"), json.RawMessage(`{"rename":{"a":1}}`)
			}, "transformer_config"},
			{"DeclarativeWithoutConfig", func(s *catalog.Sync) { s.UseTransformerClass = ptr("declarative") }, "transformer_config"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				sy := valid()
				tt.edit(&sy)
				_, err := s.CreateSync(ctx, sy)
				wantField(t, err, tt.field, catalog.ErrInvalid)
			})
		}
		if rev := mustRevision(t, s); rev != 2 {
			t.Fatalf("refused creates bumped the revision to %d", rev)
		}
		if _, err := s.CreateSync(ctx, valid()); err != nil {
			t.Fatalf("the valid sync itself: %v", err)
		}
	})

	t.Run("DuplicateRoute", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		first := MustCreateSync(t, s, shop, blog, "posts")
		_, err := s.CreateSync(ctx, catalog.Sync{SourcePlatformID: shop.ID, SourceModel: "Posts", TargetPlatformID: blog.ID,
			TargetModel: "POSTS", SyncAllFields: true, Interval: 5, UsePlatformRelations: true})
		wantField(t, err, "target_model", catalog.ErrConflict)
		if !strings.Contains(err.Error(), "#1") || first.ID != 1 {
			t.Fatalf("error %q does not name sync #1", err)
		}
		// The reverse direction is another route.
		MustCreateSync(t, s, blog, shop, "posts")
	})

	t.Run("MappingsKeptWithAllFields", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		sy, err := s.CreateSync(ctx, catalog.Sync{SourcePlatformID: shop.ID, SourceModel: "posts", TargetPlatformID: blog.ID,
			TargetModel: "posts", SyncAllFields: true, Interval: 5, FieldMappings: map[string]string{}, SyncIDs: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		if sy.FieldMappings != nil || sy.SyncIDs != nil {
			t.Fatalf("empty mappings / ids stored as %v / %v, want null", sy.FieldMappings, sy.SyncIDs)
		}
	})
}

func TestStore_UpdateSync(t *testing.T) {
	ctx := context.Background()

	t.Run("Updates", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog, wiki := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog"), MustCreatePlatform(t, s, "Wiki")
		sy := MustCreateSync(t, s, shop, blog, "posts")
		rev := mustRevision(t, s)
		sy.TargetPlatformID, sy.TargetModel, sy.UsePlatformRelations, sy.IfExists, sy.Status = wiki.ID, "pages", true, "skip", false
		got, err := s.UpdateSync(ctx, sy)
		if err != nil {
			t.Fatal(err)
		}
		if got.Title != "shop.example (posts) to wiki.example (pages) by platform" || got.IfExists != "skip" || got.Status {
			t.Fatalf("updated = %s", mustJSON(t, got))
		}
		if after := mustRevision(t, s); after != rev+1 {
			t.Fatalf("revision = %d, want %d", after, rev+1)
		}
	})

	t.Run("UnchangedWritesNothing", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		sy := MustCreateSync(t, s, shop, blog, "posts")
		rev := mustRevision(t, s)
		in := sy
		in.Title, in.SourceModel, in.FieldMappings = "whatever", " posts", map[string]string{}
		got, err := s.UpdateSync(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if !got.UpdatedAt.Equal(sy.UpdatedAt) || got.Title != sy.Title {
			t.Fatalf("unchanged update rewrote the sync: %s", mustJSON(t, got))
		}
		if after := mustRevision(t, s); after != rev {
			t.Fatalf("unchanged update bumped the revision to %d", after)
		}
	})

	t.Run("KeepsObservedFields", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		sy := MustCreateSync(t, s, shop, blog, "posts")
		msg := "boom"
		observe(t, s, blog.ID, protocol.SyncStatus{ID: sy.ID, Role: "target", Status: true, HasErrors: true, ErrorMessage: &msg,
			LastSync: ptr("2026-11-26T12:00:01Z")})
		sy.Interval = 5
		sy.HasErrors, sy.ErrorMessage, sy.LastSync = false, nil, nil
		got, err := s.UpdateSync(ctx, sy)
		if err != nil {
			t.Fatal(err)
		}
		if !got.HasErrors || got.ErrorMessage == nil || got.LastSync == nil {
			t.Fatalf("update cleared observed fields: %s", mustJSON(t, got))
		}
	})

	t.Run("Errors", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		a := MustCreateSync(t, s, shop, blog, "posts")
		b := MustCreateSync(t, s, shop, blog, "pages")
		missing := a
		missing.ID = 99
		if _, err := s.UpdateSync(ctx, missing); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("update missing: %v", err)
		}
		b.SourceModel, b.TargetModel = "posts", "posts"
		_, err := s.UpdateSync(ctx, b)
		wantField(t, err, "target_model", catalog.ErrConflict)
		b.TargetPlatformID = shop.ID
		_, err = s.UpdateSync(ctx, b)
		wantField(t, err, "target_model", catalog.ErrInvalid)
	})
}

func TestStore_DeleteSync(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
	sy := MustCreateSync(t, s, shop, blog, "posts")
	if err := s.DeleteSync(ctx, sy.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(ctx, sy.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("deleted sync: %v", err)
	}
	if rev := mustRevision(t, s); rev != 4 {
		t.Fatalf("revision = %d, want 4", rev)
	}
	if err := s.DeleteSync(ctx, sy.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if err := s.DeletePlatform(ctx, shop.ID); err != nil {
		t.Fatalf("platform no longer in use: %v", err)
	}
}

func TestStore_Syncs(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	shop, blog, wiki := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog"), MustCreatePlatform(t, s, "Wiki")
	a := MustCreateSync(t, s, shop, blog, "posts")
	b := MustCreateSync(t, s, blog, wiki, "posts")
	c := MustCreateSync(t, s, shop, wiki, "users")

	ids := func(list []catalog.Sync) string {
		var out []string
		for _, sy := range list {
			out = append(out, protocol.FormatID(sy.ID))
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name   string
		filter catalog.SyncFilter
		want   []catalog.Sync
	}{
		{"All", catalog.SyncFilter{}, []catalog.Sync{a, b, c}},
		{"BySource", catalog.SyncFilter{SourcePlatformID: shop.ID}, []catalog.Sync{a, c}},
		{"ByTarget", catalog.SyncFilter{TargetPlatformID: wiki.ID}, []catalog.Sync{b, c}},
		{"BySourceAndTarget", catalog.SyncFilter{SourcePlatformID: shop.ID, TargetPlatformID: wiki.ID}, []catalog.Sync{c}},
		{"ByEitherEnd", catalog.SyncFilter{PlatformID: blog.ID}, []catalog.Sync{a, b}},
		{"None", catalog.SyncFilter{SourcePlatformID: wiki.ID}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Syncs(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("Syncs returned nil, want an empty list")
			}
			if ids(got) != ids(tt.want) {
				t.Fatalf("Syncs(%+v) = [%s], want [%s]", tt.filter, ids(got), ids(tt.want))
			}
		})
	}
}

func TestStore_SyncsForPlatform(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	shop, blog, wiki := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog"), MustCreatePlatform(t, s, "Wiki")
	a := MustCreateSync(t, s, shop, blog, "posts")
	b := MustCreateSync(t, s, wiki, shop, "users")
	MustCreateSync(t, s, blog, wiki, "pages")
	got, err := s.SyncsForPlatform(ctx, shop.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != a.ID || got[1].ID != b.ID {
		t.Fatalf("SyncsForPlatform = %s", mustJSON(t, got))
	}
	if _, err := s.SyncsForPlatform(ctx, 99); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("SyncsForPlatform(99) = %v", err)
	}
}

// TestStore_TransformerConfig stores transformer_config compacted, hands it to agents in
// the desired state, and changes it (bumping the revision); null clears it.
func TestStore_TransformerConfig(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
	sy, err := s.CreateSync(ctx, catalog.Sync{SourcePlatformID: shop.ID, SourceModel: "users", TargetPlatformID: blog.ID,
		TargetModel: "users", SyncAllFields: true, Interval: 1, UseTransformerClass: ptr("declarative"),
		TransformerConfig: json.RawMessage(`{ "drop": ["password"],
			"rename": {"email": "user_email"} }`)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"drop":["password"],"rename":{"email":"user_email"}}`
	if string(sy.TransformerConfig) != want || string(sy.Protocol().TransformerConfig) != want {
		t.Fatalf("stored %s", sy.TransformerConfig)
	}
	rev := mustRevision(t, s)
	sy.UseTransformerClass, sy.TransformerConfig = ptr("custom_go_transformer"), json.RawMessage(`{"anything":[1]}`)
	if sy, err = s.UpdateSync(ctx, sy); err != nil || string(sy.TransformerConfig) != `{"anything":[1]}` {
		t.Fatalf("update = %s, %v", sy.TransformerConfig, err)
	}
	if mustRevision(t, s) != rev+1 {
		t.Fatal("changing the config did not bump the revision")
	}
	sy.UseTransformerClass, sy.TransformerConfig = nil, json.RawMessage(`null`)
	if sy, err = s.UpdateSync(ctx, sy); err != nil || sy.TransformerConfig != nil || sy.Protocol().TransformerConfig != nil {
		t.Fatalf("cleared = %s, %v", sy.TransformerConfig, err)
	}
}

func TestSync_Protocol(t *testing.T) {
	sy := catalog.Sync{ID: 7, Status: true, Title: "shop.example (posts) to blog.example (posts)", SourcePlatformID: 1,
		SourceModel: "posts", TargetPlatformID: 2, TargetModel: "posts", IfExists: "update", SyncAllFields: true,
		Interval: 60, HasErrors: true, SyncableType: ptr("x")}
	// PROTOCOL.md section 6, example sync.
	want := `{"id":7,"status":true,"title":"shop.example (posts) to blog.example (posts)","source_platform_id":1,` +
		`"source_model":"posts","target_platform_id":2,"target_model":"posts","use_platform_relations":false,` +
		`"if_exists":"update","sync_ids":null,"sync_all_fields":true,"field_mappings":null,"use_transformer_class":null,"interval":60}`
	if got := mustJSON(t, sy.Protocol()); got != want {
		t.Fatalf("protocol sync\n got %s\nwant %s", got, want)
	}
	sy.SyncIDs, sy.FieldMappings = []string{"a"}, map[string]string{"x": "y"}
	p := sy.Protocol()
	sy.SyncIDs[0], sy.FieldMappings["x"] = "changed", "changed"
	if p.SyncIDs[0] != "a" || p.FieldMappings["x"] != "y" {
		t.Fatal("Protocol must copy slices and maps")
	}
}
