package reconcile

import (
	"reflect"
	"testing"

	"github.com/mooxsync/mooxsync/backend/sqldb"
)

func TestAfter(t *testing.T) {
	rs := []sqldb.KeyRange{{Hi: "c"}, {Lo: "f", Hi: "h"}, {Lo: "k"}}
	for _, tc := range []struct {
		k    string
		want []sqldb.KeyRange
	}{
		{"a", []sqldb.KeyRange{{Lo: "a", Hi: "c"}, {Lo: "f", Hi: "h"}, {Lo: "k"}}},
		{"c", []sqldb.KeyRange{{Lo: "f", Hi: "h"}, {Lo: "k"}}},
		{"d", []sqldb.KeyRange{{Lo: "f", Hi: "h"}, {Lo: "k"}}}, // between ranges: the next one stays whole
		{"g", []sqldb.KeyRange{{Lo: "g", Hi: "h"}, {Lo: "k"}}},
		{"z", []sqldb.KeyRange{{Lo: "z"}}},
	} {
		if got := after(rs, tc.k); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("after %q = %+v, want %+v", tc.k, got, tc.want)
		}
	}
	if got := after([]sqldb.KeyRange{{Lo: "a", Hi: "b"}}, "b"); got != nil {
		t.Errorf("after the last key: %+v", got)
	}
}

func TestGroups(t *testing.T) {
	ps := []piece{
		{r: sqldb.KeyRange{Lo: "m", Hi: "n"}, count: 5},
		{r: sqldb.KeyRange{Hi: "b"}, count: 3},
		{r: sqldb.KeyRange{Lo: "c", Hi: "d"}, count: 4},
		{r: sqldb.KeyRange{Lo: "x"}, count: 20},
	}
	got := groups(ps, 8)
	var shape [][]string
	for _, g := range got {
		var los []string
		for _, p := range g {
			los = append(los, p.r.Lo)
		}
		shape = append(shape, los)
	}
	// In key order; a group closes before it would pass 8 rows; a big piece stands alone.
	want := [][]string{{"", "c"}, {"m"}, {"x"}}
	if !reflect.DeepEqual(shape, want) {
		t.Errorf("groups = %q, want %q", shape, want)
	}
}

func TestChunk(t *testing.T) {
	size := func(n int) int { return n }
	for _, tc := range []struct {
		items []int
		max   int
		want  [][]int
	}{
		{nil, 3, nil},
		{[]int{1, 2, 3, 4, 5, 6, 7}, 3, [][]int{{1, 2, 3}, {4, 5, 6}, {7}}},
		// By bytes: a run closes before passing requestBudget; a larger item stands alone.
		{[]int{requestBudget / 2, requestBudget / 2, 1, requestBudget + 1, 2}, 10,
			[][]int{{requestBudget / 2, requestBudget / 2}, {1}, {requestBudget + 1}, {2}}},
	} {
		if got := chunk(tc.items, tc.max, 0, nil, size); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("chunk(%v, %d) = %v, want %v", tc.items, tc.max, got, tc.want)
		}
	}
}
