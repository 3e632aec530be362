package sqldb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// hashCols is the projection the range tests hash: every posts column but the local id.
var hashCols = []string{"ulid", "slug", "title", "body", "views", "price", "rating", "published", "meta", "published_at", "created_at"}

// rangeKeys are keys whose byte order differs from case-insensitive, accent-aware and
// numeric orders (and that no case-insensitive unique index confuses).
var rangeKeys = []string{"10", "9", "Zeta", "a b", "a-b", "alpha", "beta", "ß", "Éclair", "日本"}

// insertRangeRows writes one row per key of rangeKeys with values that each database stores
// differently (numeric scale, JSON spacing and key order, fractional seconds, booleans).
func insertRangeRows(t testing.TB, db *sqldb.DB) {
	t.Helper()
	ctx := context.Background()
	w, err := db.BeginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Rollback()
	var rows []map[string]any
	for i, k := range rangeKeys {
		row := map[string]any{
			"ulid": k, "slug": "slug-" + k, "title": "Title " + k, "body": "",
			"views": json.Number(fmt.Sprint(i * 1000)), "price": json.Number("5"), "rating": json.Number("0.1"),
			"published": i%2 == 0, "meta": map[string]any{"b": json.Number("2.50"), "a": []any{"x", nil}},
			"published_at": "2026-11-26T12:00:00.123Z", "created_at": "2026-11-26 12:00:00",
		}
		switch i {
		case 1:
			row["body"] = nil // NULL differs from ''
			row["price"] = json.Number("19.99")
		case 2:
			row["meta"] = nil
			row["published_at"] = nil
		}
		rows = append(rows, row)
	}
	if _, _, err := w.UpsertMany(ctx, "posts", "ulid", rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// rangeResult is what one database answers, compared across dialects.
type rangeResult struct {
	Hashes    []sqldb.RangeHash
	KeyHashes []sqldb.KeyHash
	Split     []string
	Order     []string
	Count     int64
}

func TestDB_HashesAgreeAcrossDialects(t *testing.T) {
	ctx := context.Background()
	ranges := []sqldb.KeyRange{{Hi: "9"}, {Lo: "9", Hi: "alpha"}, {Lo: "alpha", Hi: "beta"}, {Lo: "zz"}}
	var (
		mu    sync.Mutex
		first *rangeResult
		from  string
	)
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		sqldbtest.CreatePosts(t, db, "posts")
		insertRangeRows(t, db)
		var got rangeResult
		var err error
		if got.Hashes, err = db.Hashes(ctx, "posts", "ulid", hashCols, ranges); err != nil {
			t.Fatal(err)
		}
		if got.KeyHashes, err = db.KeyHashes(ctx, "posts", "ulid", hashCols, []sqldb.KeyRange{{}}); err != nil {
			t.Fatal(err)
		}
		if got.Split, err = db.Split(ctx, "posts", "ulid", sqldb.KeyRange{}, 3); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Rows(ctx, "posts", "ulid", []string{"title"}, sqldb.KeyRange{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			got.Order = append(got.Order, r["ulid"].(string))
		}
		if got.Count, err = db.Count(ctx, "posts", "ulid", sqldb.KeyRange{Lo: "9"}); err != nil {
			t.Fatal(err)
		}

		want := slices.Clone(rangeKeys)
		slices.Sort(want) // Go's string order is byte order
		if !reflect.DeepEqual(got.Order, want) {
			t.Errorf("key order = %q, want %q", got.Order, want)
		}
		if len(got.KeyHashes) != len(rangeKeys) {
			t.Fatalf("%d key hashes", len(got.KeyHashes))
		}
		var total int64
		for _, h := range got.Hashes {
			total += h.Count
		}
		if total != int64(len(rangeKeys)) || got.Hashes[3].Count != 3 || got.Hashes[3].Hash == (sqldb.Digest{}) {
			t.Errorf("hashes = %+v", got.Hashes)
		}
		if got.Count != int64(len(rangeKeys)-2) {
			t.Errorf("count after 9 = %d", got.Count)
		}
		if len(got.Split) != 2 {
			t.Errorf("split = %q", got.Split)
		}

		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first, from = &got, db.Dialect().Name()
			return
		}
		if !reflect.DeepEqual(got, *first) {
			t.Errorf("%s disagrees with %s:\n got  %+v\n want %+v", db.Dialect().Name(), from, got, *first)
		}
	})
}

func TestDB_HashesSeeEveryChange(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		insertRangeRows(t, db)
		all := []sqldb.KeyRange{{}}
		prev, err := db.Hashes(ctx, "posts", "ulid", hashCols, all)
		if err != nil {
			t.Fatal(err)
		}
		// Each change, made on top of the ones before, changes the digest.
		for _, tc := range []struct {
			name string
			set  map[string]any
		}{
			{"NULL to empty", map[string]any{"body": ""}},
			{"number", map[string]any{"views": json.Number("1")}},
			{"boolean", map[string]any{"published": true}},
			{"json", map[string]any{"meta": map[string]any{"b": json.Number("2.51")}}},
			{"datetime", map[string]any{"created_at": "2026-11-26 12:00:01"}},
			{"text", map[string]any{"title": "title 9"}},
		} {
			w, err := db.BeginWrite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Update(ctx, "posts", "ulid", "9", tc.set); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			after, err := db.Hashes(ctx, "posts", "ulid", hashCols, all)
			if err != nil {
				t.Fatal(err)
			}
			if after[0].Hash == prev[0].Hash || after[0].Count != prev[0].Count {
				t.Errorf("%s: change not seen: %+v vs %+v", tc.name, after[0], prev[0])
			}
			prev = after
		}
		// The key column itself is optional in the projection: the key text is always hashed.
		a, err := db.KeyHashes(ctx, "posts", "ulid", []string{"title"}, all)
		if err != nil {
			t.Fatal(err)
		}
		var h sqldb.RowHasher
		if a[0].Key != "10" || a[0].Hash != h.Sum("10", []any{"Title 10"}) {
			t.Errorf("key hash = %+v", a[0])
		}
	})
}

func TestRowHasher_Canonical(t *testing.T) {
	var h sqldb.RowHasher
	sum := func(v any) sqldb.Digest { return h.Sum("k", []any{v}) }
	same := []struct {
		name string
		a, b any
	}{
		{"numeric scale", json.Number("5.00"), json.Number("5")},
		{"trailing fraction zeros", json.Number("19.90"), json.Number("19.9")},
		{"exponent", json.Number("1e3"), json.Number("1000")},
		{"small exponent", json.Number("1.5E-7"), json.Number("0.00000015")},
		{"negative zero", json.Number("-0.0"), json.Number("0")},
		{"leading zeros", json.Number("007.50"), json.Number("7.5")},
		{"number and its text", json.Number("1.5"), "1.5"},
		{"float64", 0.1, json.Number("0.1")},
		{"float32", float32(0.1), json.Number("0.1")},
		{"int64", int64(42), json.Number("42")},
		{"bool and 1", true, json.Number("1")},
		{"bool and 0", false, "0"},
		{"datetime spellings", "2026-11-26 13:00:00+01:00", "2026-11-26T12:00:00Z"},
		{"fraction truncated", "2026-11-26T12:00:00.999Z", "2026-11-26T12:00:00Z"},
		{"date", "2026-11-26", "2026-11-26T00:00:00Z"},
		{"json key order", map[string]any{"a": json.Number("1"), "b": []any{"x"}}, map[string]any{"b": []any{"x"}, "a": json.Number("1.0")}},
		{"raw json", json.RawMessage(`{"b": ["x"], "a": 1}`), map[string]any{"a": json.Number("1"), "b": []any{"x"}}},
	}
	for _, tc := range same {
		if sum(tc.a) != sum(tc.b) {
			t.Errorf("%s: %v and %v hash differently", tc.name, tc.a, tc.b)
		}
	}
	differ := []struct {
		name string
		a, b any
	}{
		{"NULL and empty", nil, ""},
		{"case", "Abc", "abc"},
		{"whole seconds", "2026-11-26T12:00:01Z", "2026-11-26T12:00:00Z"},
		{"array and object", []any{}, map[string]any{}},
		{"string and array of it", "x", []any{"x"}},
		{"number", json.Number("1.5"), json.Number("1.50001")},
		{"leading zeros in text", "007", json.Number("7")},
	}
	for _, tc := range differ {
		if sum(tc.a) == sum(tc.b) {
			t.Errorf("%s: %v and %v hash alike", tc.name, tc.a, tc.b)
		}
	}
	// Values do not run into each other: ("ab", "") differs from ("a", "b").
	if h.Sum("k", []any{"ab", ""}) == h.Sum("k", []any{"a", "b"}) || h.Sum("ka", nil) == h.Sum("k", []any{"a"}) {
		t.Error("encoding is ambiguous")
	}
	// Pinned: other implementations must compute exactly this digest.
	got := h.Sum("01HZ", []any{"Hello", json.Number("19.90"), true, nil, map[string]any{"b": json.Number("2"), "a": "x"}})
	if got.String() != pinnedDigest {
		t.Errorf("digest = %s, want %s", got, pinnedDigest)
	}
}

// pinnedDigest is the digest of the row in TestRowHasher_Canonical, computed independently
// (Python: hashlib.sha256 over the bytes the RowHasher comment specifies).
const pinnedDigest = "J5ETZhpVhLlUnMWKYMwpJA=="

func TestDigest(t *testing.T) {
	var a, b sqldb.Digest
	a[0], a[8] = 0xff, 1
	b[0] = 2
	sum := a.Add(b)
	if sum[0] != 1 || sum[1] != 1 || sum[8] != 1 {
		t.Errorf("carry: %v", sum)
	}
	var max sqldb.Digest
	for i := range max {
		max[i] = 0xff
	}
	var one sqldb.Digest
	one[0] = 1
	if max.Add(one) != (sqldb.Digest{}) {
		t.Error("no wrap-around at 2^128")
	}
	text, _ := json.Marshal(sum)
	var back sqldb.Digest
	if err := json.Unmarshal(text, &back); err != nil || back != sum {
		t.Errorf("round trip %s: %v %v", text, back, err)
	}
	for _, bad := range []string{`"AAAA"`, `"not base64 at all!!!!!!!"`, `"AAAAAAAAAAAAAAAAAAAAAAAAAAAA"`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
}

func TestKeyRange(t *testing.T) {
	r := sqldb.KeyRange{Lo: "b", Hi: "d"}
	for k, want := range map[string]bool{"b": false, "ba": true, "d": true, "da": false, "": false} {
		if r.Contains(k) != want {
			t.Errorf("(b, d] contains %q: %v", k, !want)
		}
	}
	if !(sqldb.KeyRange{}).Contains("") || !(sqldb.KeyRange{Hi: "a"}).Contains("") {
		t.Error("an open start must hold the empty key")
	}
}

func TestDB_ScanRefusesBadInput(t *testing.T) {
	db := sqldbtest.MustOpenSQLite(t)
	sqldbtest.CreatePosts(t, db, "posts")
	ctx := context.Background()
	for _, ranges := range [][]sqldb.KeyRange{
		{{Lo: "b", Hi: "a"}},
		{{Lo: "a", Hi: "c"}, {Lo: "b", Hi: "d"}},
		{{Lo: "a"}, {Lo: "b"}},
		{{Hi: "b"}, {Hi: "c"}},
	} {
		if _, err := db.Hashes(ctx, "posts", "ulid", nil, ranges); protocol.CodeOf(err) != protocol.CodeBadRequest {
			t.Errorf("ranges %+v: got %v, want bad_request", ranges, err)
		}
	}
	if _, err := db.Hashes(ctx, "posts", "ulid", []string{crafted}, nil); protocol.CodeOf(err) != protocol.CodeUnknownColumn {
		t.Errorf("crafted column: got %v", err)
	}
	if _, err := db.Hashes(ctx, "posts", crafted, nil, nil); protocol.CodeOf(err) != protocol.CodeUnknownColumn {
		t.Errorf("crafted key: got %v", err)
	}
	if _, err := db.Hashes(ctx, "mooxsync_owned", "key_value", nil, nil); protocol.CodeOf(err) != protocol.CodeUnknownModel {
		t.Errorf("internal table: got %v", err)
	}
}

// TestDB_ScanManyRuns reads more separate runs than one query filters by in SQL, on an
// indexed key (SQLite: one query per run), an integer key (byte order of the decimal text),
// and a key without index.
func TestDB_ScanManyRuns(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.MustExec(t, db, map[string]string{
			"": `CREATE TABLE items (code VARCHAR(20) NOT NULL UNIQUE, n INTEGER NOT NULL, label VARCHAR(20))`,
		})
		w, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Rollback()
		var rows []map[string]any
		for i := range 500 {
			rows = append(rows, map[string]any{"code": fmt.Sprintf("c%04d", i), "n": i, "label": fmt.Sprintf("l%04d", i)})
		}
		if _, _, err := w.UpsertMany(ctx, "items", "code", rows); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"code", "n", "label"} {
			// 100 separate ranges of 2 keys each: every fifth pair of the sorted key texts.
			var texts []string
			for i := range 500 {
				switch key {
				case "n":
					texts = append(texts, fmt.Sprint(i))
				case "code":
					texts = append(texts, fmt.Sprintf("c%04d", i))
				default:
					texts = append(texts, fmt.Sprintf("l%04d", i))
				}
			}
			slices.Sort(texts)
			var ranges []sqldb.KeyRange
			want := map[string]bool{}
			for i := 0; i+2 < len(texts); i += 5 {
				ranges = append(ranges, sqldb.KeyRange{Lo: texts[i], Hi: texts[i+2]})
				want[texts[i+1]], want[texts[i+2]] = true, true
			}
			var got []string
			err := db.Scan(ctx, "items", key, nil, ranges, true, func(r int, k string, _ []any) error {
				if !ranges[r].Contains(k) {
					t.Errorf("%s: key %q reported in range %d %+v", key, k, r, ranges[r])
				}
				got = append(got, k)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || !slices.IsSorted(got) {
				t.Errorf("%s: got %d keys (sorted %v), want %d", key, len(got), slices.IsSorted(got), len(want))
			}
			for _, k := range got {
				if !want[k] {
					t.Errorf("%s: unexpected key %q", key, k)
				}
			}
			// ScanKeys finds rows by exact key text.
			var found []string
			err = db.ScanKeys(ctx, "items", key, []string{"n"}, []string{texts[7], texts[3], "nope"}, func(k string, vals []any) error {
				found = append(found, k)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(found)
			if !reflect.DeepEqual(found, []string{texts[3], texts[7]}) {
				t.Errorf("%s: ScanKeys found %q", key, found)
			}
		}
	})
}

// TestDB_DigestsMatchValues holds the fast digest reads (values encoded as the driver
// returns them) to the values Scan returns, for awkward values of every type.
func TestDB_DigestsMatchValues(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		sqldbtest.CreatePosts(t, db, "posts")
		insertRangeRows(t, db)
		if db.Dialect().Name() == "sqlite" {
			// SQLite stores what it is given: reals in integer columns, integers in datetime
			// columns, blobs and invalid UTF-8 in text, control characters, huge numbers.
			sqldbtest.MustExec(t, db, map[string]string{"sqlite": `INSERT INTO posts (ulid, slug, title, body, views, price, rating, published, meta, published_at, created_at) VALUES
				('s1', x'00ff10', 'a"b\' || char(10) || char(1) || char(0) || 'x', CAST(x'ff41' AS TEXT), 2.5, 1e300, -0.0, 2, '{"b":[1,2.50],"a":"\u00e9"}', 1700000000, 1700000000.5),
				('s2', 'é', '', NULL, 9223372036854775807, 0.1 + 0.2, 1e400, 0, 'not json', 'garbage', '2026-11-26T12:00:00.999+02:00'),
				('s3', 'x', 'y', 'z', -9223372036854775808, -1e-300, -1e400, 1, '[]', '2026-11-26', 0)`})
		}
		keys, err := db.KeyHashes(ctx, "posts", "ulid", hashCols, []sqldb.KeyRange{{}})
		if err != nil {
			t.Fatal(err)
		}
		var h sqldb.RowHasher
		want := map[string]sqldb.Digest{}
		err = db.Scan(ctx, "posts", "ulid", hashCols, []sqldb.KeyRange{{}}, false, func(_ int, k string, vals []any) error {
			want[k] = h.Sum(k, vals)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != len(want) {
			t.Fatalf("%d digests, %d rows", len(keys), len(want))
		}
		for _, kh := range keys {
			if want[kh.Key] != kh.Hash {
				t.Errorf("row %q: digest read %s, from values %s", kh.Key, kh.Hash, want[kh.Key])
			}
		}
	})
}
