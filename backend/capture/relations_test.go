package capture_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// TestRelations creates model_platform, finds records by their unique identifier, sets
// and reads their platforms in every dialect, and captures the relation changes: a set
// deletes the platforms no longer named, inserts the new ones and touches the rows it
// keeps, so that every platform of the record is re-evaluated.
func TestRelations(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, app *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, app, "posts")
		sqldbtest.MustExec(t, app, map[string]string{"": `INSERT INTO posts (ulid, title) VALUES ('u1', 'one')`})
		sqldbtest.MustExec(t, app, map[string]string{"": `INSERT INTO posts (ulid, title) VALUES ('u2', 'two')`})
		rel := capture.NewRelations(app)

		// No table yet: no relations.
		if got, err := rel.Platforms(ctx, "posts", "1"); err != nil || len(got) != 0 {
			t.Fatalf("platforms without a table = %v, %v", got, err)
		}
		for range 2 { // idempotent
			if err := capture.EnsureRelationsTable(ctx, app); err != nil {
				t.Fatal(err)
			}
		}
		p := mustPump(t, app, capture.Options{}, capture.RelationsTable)

		fields := []string{"uuid", "ulid", "slug"}
		id, err := rel.Find(ctx, "posts", fields, "u2")
		if err != nil {
			t.Fatal(err)
		}
		var want string
		if err := app.SQL().QueryRow(`SELECT id FROM posts WHERE ulid = 'u2'`).Scan(&want); err != nil || id != want {
			t.Fatalf("Find = %q, want %q (%v)", id, want, err)
		}
		if _, err := rel.Find(ctx, "posts", fields, "nope"); protocol.CodeOf(err) != protocol.CodeNotFound {
			t.Fatalf("Find of an unknown key: %v", err)
		}
		if _, err := rel.Find(ctx, "nope", fields, "u2"); protocol.CodeOf(err) != protocol.CodeUnknownModel {
			t.Fatalf("Find in an unknown model: %v", err)
		}
		if _, err := rel.Find(ctx, "posts", []string{"uuid"}, "u2"); protocol.CodeOf(err) != protocol.CodeBadRequest {
			t.Fatalf("Find without an identifier field: %v", err)
		}

		now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
		set := func(ids ...int64) {
			t.Helper()
			now = now.Add(time.Minute)
			if err := rel.Set(ctx, "posts", id, ids, now); err != nil {
				t.Fatal(err)
			}
			got, err := rel.Platforms(ctx, "posts", id)
			ids = slices.Compact(slices.Sorted(slices.Values(ids)))
			if err != nil || !slices.Equal(got, ids) {
				t.Fatalf("platforms = %v, %v; want %v", got, err, ids)
			}
		}
		set(3, 2, 3)
		set(2, 4)
		set()
		if got, err := rel.Platforms(ctx, "posts", "1"); err != nil || len(got) != 0 {
			t.Fatalf("the other post has platforms %v, %v", got, err)
		}

		drain(t, p)
		var ops []string
		for _, r := range queueRows(t, p.Queue(), capture.RelationsTable) {
			b, _ := json.Marshal(r.Image)
			rl, ok := capture.RelationOf(b)
			if !ok || rl.Model != "posts" || rl.ID != id {
				t.Fatalf("relation of %s", b)
			}
			ops = append(ops, r.Op+" "+protocol.FormatID(rl.Platform))
		}
		// set(3,2,3): +2 +3; set(2,4): -3, touch 2, +4; set(): -2 -4.
		slices.Sort(ops)
		wantOps := []string{"created 2", "created 3", "created 4", "deleted 2", "deleted 3", "deleted 4", "updated 2"}
		if !slices.Equal(ops, wantOps) {
			t.Fatalf("captured %v, want %v", ops, wantOps)
		}

		// The record's row and id, as delivery reads them.
		img, found, err := rel.Row(ctx, "posts", id)
		if err != nil || !found {
			t.Fatalf("Row = %v, %v", found, err)
		}
		got, ok, err := rel.ID(ctx, "posts", img)
		if err != nil || !ok || got != id {
			t.Fatalf("ID of %s = %q %v %v", img, got, ok, err)
		}
		if _, found, err := rel.Row(ctx, "posts", "999"); err != nil || found {
			t.Fatalf("Row of a missing record = %v, %v", found, err)
		}
	})
}

func TestRelationOf(t *testing.T) {
	for img, want := range map[string]capture.Relation{
		`{"id":1,"model_type":"posts","model_id":7,"platform_id":2}`: {Model: "posts", ID: "7", Platform: 2},
		`{"model_type":"users","model_id":"01HZ","platform_id":"3"}`: {Model: "users", ID: "01HZ", Platform: 3},
		`{"model_type":"posts","model_id":7}`:                        {},
		`{"model_type":null,"model_id":7,"platform_id":2}`:           {},
		`{"model_type":"posts","model_id":7,"platform_id":"x"}`:      {},
		`not json`: {},
		`{"model_type":"posts","model_id":12345678901234567,"platform_id":9}`: {Model: "posts", ID: "12345678901234567", Platform: 9},
	} {
		got, ok := capture.RelationOf([]byte(img))
		if ok != (want != capture.Relation{}) || got != want {
			t.Errorf("RelationOf(%s) = %+v %v, want %+v", img, got, ok, want)
		}
	}
}
