package agent_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// fakeRelations keeps relations by model and key.
type fakeRelations struct {
	mu  sync.Mutex
	rel map[string][]int64
}

func (f *fakeRelations) Relations(_ context.Context, model, key string) ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if model != "posts" {
		return nil, protocol.Errorf(protocol.CodeUnknownModel, "unknown model %q", model)
	}
	ids, ok := f.rel[key]
	if !ok {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no record %q", key)
	}
	return ids, nil
}

func (f *fakeRelations) SetRelations(ctx context.Context, model, key string, ids []int64) ([]int64, error) {
	if _, err := f.Relations(ctx, model, key); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.rel[key] = ids
	f.mu.Unlock()
	return ids, nil
}

func TestRelations_GetPut(t *testing.T) {
	rel := &fakeRelations{rel: map[string][]int64{"01HZ a/b": nil, "x": {sourceID}}}
	ta := mustStartAgent(t, func(o *agent.Options) { o.Relations = rel })
	ta.mustReady()

	var got protocol.Relations
	res := ta.control(http.MethodGet, "/api/relations/posts/01HZ%20a%2Fb", nil)
	if res.Status != http.StatusOK || string(res.Body) != `{"platform_ids":[]}`+"\n" {
		t.Fatalf("GET = %d %s", res.Status, res.Body)
	}
	res = ta.control(http.MethodPut, "/api/relations/posts/01HZ%20a%2Fb",
		protocol.Relations{PlatformIDs: []int64{otherID, sourceID, otherID}})
	res.json(t, &got)
	want := []int64{sourceID, otherID}
	slices.Sort(want)
	if res.Status != http.StatusOK || !slices.Equal(got.PlatformIDs, want) || !slices.Equal(rel.rel["01HZ a/b"], want) {
		t.Fatalf("PUT = %d %s, stored %v", res.Status, res.Body, rel.rel)
	}

	for _, c := range []struct {
		method, uri string
		body        any
		code        protocol.Code
	}{
		{http.MethodGet, "/api/relations/posts/nope", nil, protocol.CodeNotFound},
		{http.MethodGet, "/api/relations/pages/x", nil, protocol.CodeUnknownModel},
		{http.MethodPut, "/api/relations/posts/x", protocol.Relations{PlatformIDs: []int64{99}}, protocol.CodeBadRequest},
		{http.MethodPut, "/api/relations/posts/x", protocol.Relations{PlatformIDs: []int64{0}}, protocol.CodeBadRequest},
		{http.MethodPut, "/api/relations/posts/x", json.RawMessage(`{"platform_ids":[2],"extra":1}`), protocol.CodeBadRequest},
	} {
		if res := ta.control(c.method, c.uri, c.body); res.errorCode() != c.code {
			t.Errorf("%s %s = %d %s, want %s", c.method, c.uri, res.Status, res.Body, c.code)
		}
	}
	if !slices.Equal(rel.rel["x"], []int64{sourceID}) {
		t.Errorf("a refused PUT changed the relations: %v", rel.rel["x"])
	}
}

func TestRelations_NotAvailable(t *testing.T) {
	ta := mustStartAgent(t, nil)
	ta.mustReady()
	if res := ta.control(http.MethodGet, "/api/relations/posts/x", nil); res.errorCode() != protocol.CodeNotFound {
		t.Fatalf("GET = %d %s", res.Status, res.Body)
	}
}

// TestPutState_Transformers refuses a state in which a sync this platform is the source
// of names a transformer the agent does not have, or a config it refuses, with an error
// naming the sync and the transformer; a sync it is only the target of is not its
// business.
func TestPutState_Transformers(t *testing.T) {
	ta := mustStartAgent(t, nil)
	ta.mustReady()
	name := func(s string) *string { return &s }
	outgoing := protocol.Sync{ID: 9, Status: true, Title: "blog.example (posts) to wiki.example (posts)",
		SourcePlatformID: selfID, SourceModel: "posts", TargetPlatformID: otherID, TargetModel: "posts",
		IfExists: "update", SyncAllFields: true, Interval: 60}
	for _, c := range []struct {
		name   string
		config string
		want   []string
	}{
		{"no_such", "", []string{"sync 9 (blog.example (posts) to wiki.example (posts))", `"no_such" is not registered`, "declarative, lowercase_email"}},
		{"declarative", `{"rename": {"a": 1}}`, []string{"sync 9", "declarative"}},
		{"declarative", "", []string{"sync 9", "declarative"}},
		{"", `{"drop": ["a"]}`, []string{"sync 9", "transformer_config is set but use_transformer_class names no transformer"}},
	} {
		st := testState(2)
		s := outgoing
		if c.name != "" {
			s.UseTransformerClass = name(c.name)
		}
		if c.config != "" {
			s.TransformerConfig = json.RawMessage(c.config)
		}
		st.Syncs = append(st.Syncs, s)
		res := ta.control(http.MethodPut, "/api/state", st)
		if res.errorCode() != protocol.CodeBadRequest {
			t.Fatalf("%s %s: %d %s", c.name, c.config, res.Status, res.Body)
		}
		var e protocol.ErrorBody
		res.json(t, &e)
		for _, w := range c.want {
			if !contains(e.Error.Message, w) {
				t.Errorf("%s %s: %q does not say %q", c.name, c.config, e.Error.Message, w)
			}
		}
	}
	// Accepted: a registered transformer on its source, anything on a sync it only receives.
	st := testState(3)
	s := outgoing
	s.UseTransformerClass, s.TransformerConfig = name("declarative"), json.RawMessage(`{"drop": ["a"], "delay": "1s"}`)
	st.Syncs = append(st.Syncs, s)
	st.Syncs[0].UseTransformerClass = name("only_on_the_source")
	ta.putState(st)
	var got protocol.State
	ta.control(http.MethodGet, "/api/state", nil).json(t, &got)
	if got.Revision != 3 || string(got.Syncs[2].TransformerConfig) != `{"drop":["a"],"delay":"1s"}` {
		t.Fatalf("state in force = %+v", got)
	}
}
