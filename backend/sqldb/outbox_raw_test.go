package sqldb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// TestReadChangesRaw_MatchesReadChanges writes rows of every value kind with plain SQL
// through real triggers and checks that the raw read gives, decoded, exactly the rows the
// decoding read gives.
func TestReadChangesRaw_MatchesReadChanges(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		capturedPosts(t, db)
		q := `INSERT INTO posts (ulid, slug, title, body, views, price, rating, published, meta, published_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
		if db.Dialect().Name() == "postgres" {
			q = `INSERT INTO posts (ulid, slug, title, body, views, price, rating, published, meta, published_at, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
		}
		at := time.Date(2026, 11, 26, 12, 0, 0, 123e6, time.UTC)
		rows := [][]any{
			{"01A", "s1", "Grüße \"q\" \\ \n\t 🎉", "<b>&amp;</b>", int64(9223372036854775807), "1234.50", 4.25, true,
				`{"tags": ["a", "b"], "n": 1.50, "x": {"y": null}}`, at, at},
			{"01B", nil, nil, nil, nil, nil, nil, false, nil, nil, nil},
			{"01C", "123", "true", "", int64(-1), "0.01", 0.0, false, `"a string"`, at.Add(time.Hour), at},
			{"01D", "s4", "x", "y", int64(0), "99", 1e-7, true, `[1, 2, 3]`, at, at.Add(-time.Hour)},
		}
		for _, r := range rows {
			if _, err := db.SQL().ExecContext(ctx, q, r...); err != nil {
				t.Fatal(err)
			}
		}
		sqldbtest.MustExec(t, db, map[string]string{"": `UPDATE posts SET title = 'changed' WHERE ulid = '01A';
			DELETE FROM posts WHERE ulid = '01B'`})

		want, err := db.ReadChanges(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.ReadChangesRaw(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || len(got) != 6 {
			t.Fatalf("%d raw rows, %d decoded rows, want 6", len(got), len(want))
		}
		for i := range got {
			w, g := want[i], got[i]
			if g.Seq != w.Seq || g.Model != w.Model || g.Op != w.Op || g.OriginPlatformID != w.OriginPlatformID ||
				!g.ChangedAt.Equal(w.ChangedAt) {
				t.Errorf("row %d: %+v, want %+v", i, g, w)
			}
			dec := json.NewDecoder(bytes.NewReader(g.Image))
			dec.UseNumber()
			var img map[string]any
			if err := dec.Decode(&img); err != nil {
				t.Fatalf("row %d image %s: %v", i, g.Image, err)
			}
			if !reflect.DeepEqual(img, w.Row) {
				t.Errorf("row %d image\n %#v\nwant %#v", i, img, w.Row)
			}
		}
		// Pages as ReadChanges does.
		page, err := db.ReadChangesRaw(ctx, got[1].Seq, 2)
		if err != nil || len(page) != 2 || page[0].Seq != got[2].Seq {
			t.Fatalf("page after %d: %d rows, %v", got[1].Seq, len(page), err)
		}
	})
}
