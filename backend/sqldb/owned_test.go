package sqldb_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

func TestWriter_MarkOwned(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		for range 2 { // idempotent
			if err := db.EnsureOwned(ctx); err != nil {
				t.Fatal(err)
			}
		}
		long := strings.Repeat("x", sqldb.MaxOwnedKeyLen+1)
		mark := func(syncID int64, model string, keys []string, commit bool) {
			t.Helper()
			w, err := db.BeginWrite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Rollback()
			if err := w.MarkOwned(ctx, syncID, model, keys); err != nil {
				t.Fatal(err)
			}
			if commit {
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
			}
		}
		// 250 keys go out as statements of 200, 20, 20, 1 … rows; one key twice, one too long,
		// keys differing only by case or a trailing space.
		var keys []string
		for i := range 250 {
			keys = append(keys, fmt.Sprintf("k%03d", i))
		}
		keys = append(keys, "k000", long, "a", "A", "a ", "é", "e")
		mark(7, "posts", keys, true)
		mark(7, "posts", []string{"k001", "new"}, true)  // again: left alone, new added
		mark(7, "posts", []string{"rolled back"}, false) // not committed
		mark(8, "posts", []string{"other sync"}, true)
		mark(7, "pages", []string{"other model"}, true)

		all, err := db.OwnedKeys(ctx, 7, "posts", sqldb.KeyRange{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 250+6 || all[0] != "A" || all[1] != "a" || all[2] != "a " || all[len(all)-1] != "é" {
			t.Fatalf("owned = %d keys: %q … %q", len(all), all[:3], all[len(all)-3:])
		}
		some, err := db.OwnedKeys(ctx, 7, "posts", sqldb.KeyRange{Lo: "k247", Hi: "new"})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(some, []string{"k248", "k249", "new"}) {
			t.Errorf("owned in (k247, new] = %q", some)
		}
		among, err := db.OwnedAmong(ctx, 7, "posts", []string{"a ", "b", "new", "other sync", "rolled back", long, "a", "a"})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(among, []string{"a ", "new", "a"}) {
			t.Errorf("owned among = %q", among)
		}

		w, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Rollback()
		if err := w.Disown(ctx, "posts", []string{"a", "other sync", "missing"}); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			sync int64
			key  string
			want bool
		}{{7, "a", false}, {7, "A", true}, {7, "a ", true}, {8, "other sync", false}} {
			got, err := db.OwnedAmong(ctx, c.sync, "posts", []string{c.key})
			if err != nil {
				t.Fatal(err)
			}
			if (len(got) == 1) != c.want {
				t.Errorf("sync %d owns %q: %v, want %v", c.sync, c.key, len(got) == 1, c.want)
			}
		}
		if got, _ := db.OwnedAmong(ctx, 7, "pages", []string{"other model"}); len(got) != 1 {
			t.Error("disowning posts touched pages")
		}
	})
}
