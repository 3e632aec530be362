package agent_test

import (
	"net/http"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

func TestEntityAPI_Platforms(t *testing.T) {
	ta := mustStartAgent(t, nil)
	ta.mustReady()

	var list []protocol.Platform
	res := ta.control(http.MethodGet, "/api/platforms", nil)
	res.json(t, &list)
	if res.Status != http.StatusOK || len(list) != 3 || list[0].ID != 1 {
		t.Fatalf("index = %d %s", res.Status, res.Body)
	}

	res = ta.control(http.MethodPost, "/api/platforms", `{"name":"docs","domain":"docs.example","agent_url":"https://docs.example:7443"}`)
	var created protocol.Platform
	res.json(t, &created)
	if res.Status != http.StatusCreated || created.ID != 4 || created.Name != "docs" {
		t.Fatalf("store = %d %s", res.Status, res.Body)
	}
	if res := ta.control(http.MethodPost, "/api/platforms", `{"id":4,"name":"x","domain":"x.example"}`); res.Status != http.StatusConflict {
		t.Fatalf("store of an existing id = %d %s, want 409", res.Status, res.Body)
	}
	if res := ta.control(http.MethodPost, "/api/platforms", `{"name":"x"}`); res.Status != http.StatusBadRequest {
		t.Fatalf("store without domain = %d %s, want 400", res.Status, res.Body)
	}
	if res := ta.control(http.MethodPost, "/api/platforms", `{"name":"x","domain":"x.example","token":"t"}`); res.errorCode() != protocol.CodeBadRequest {
		t.Fatalf("store with an unknown field = %d %s, want 400", res.Status, res.Body)
	}

	res = ta.control(http.MethodGet, "/api/platforms/4", nil)
	var shown protocol.Platform
	res.json(t, &shown)
	if res.Status != http.StatusOK || shown.Domain != "docs.example" {
		t.Fatalf("show = %d %s", res.Status, res.Body)
	}

	res = ta.control(http.MethodPut, "/api/platforms/4", `{"locked":true,"lock_reason":"maintenance"}`)
	var updated protocol.Platform
	res.json(t, &updated)
	if res.Status != http.StatusOK || !updated.Locked || updated.LockReason == nil || *updated.LockReason != "maintenance" || updated.Name != "docs" {
		t.Fatalf("update = %d %s", res.Status, res.Body)
	}
	if res := ta.control(http.MethodPut, "/api/platforms/4", `{"id":5}`); res.Status != http.StatusBadRequest {
		t.Fatalf("update changing the id = %d %s, want 400", res.Status, res.Body)
	}

	res = ta.control(http.MethodDelete, "/api/platforms/4", nil)
	if res.Status != http.StatusNoContent || len(res.Body) != 0 {
		t.Fatalf("destroy = %d %q", res.Status, res.Body)
	}
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		if res := ta.control(method, "/api/platforms/4", `{}`); res.Status != http.StatusNotFound || res.errorCode() != protocol.CodeNotFound {
			t.Fatalf("%s of a destroyed platform = %d %s, want 404", method, res.Status, res.Body)
		}
	}
	if res := ta.control(http.MethodGet, "/api/platforms/abc", nil); res.Status != http.StatusNotFound {
		t.Fatalf("show of a non-numeric id = %d %s", res.Status, res.Body)
	}
	if res := ta.control(http.MethodDelete, "/api/platforms/2", nil); res.Status != http.StatusConflict {
		t.Fatalf("destroy of the agent's own platform = %d %s, want 409", res.Status, res.Body)
	}

	// Destroying a platform takes its syncs and peer entry with it.
	if res := ta.control(http.MethodDelete, "/api/platforms/3", nil); res.Status != http.StatusNoContent {
		t.Fatalf("destroy 3 = %d %s", res.Status, res.Body)
	}
	var st protocol.State
	ta.control(http.MethodGet, "/api/state", nil).json(t, &st)
	if len(st.Syncs) != 1 || st.Syncs[0].ID != 7 || len(st.Peers) != 0 || st.Revision != 1 {
		t.Fatalf("state after destroying platform 3 = %+v", st)
	}
}

func TestEntityAPI_Syncs(t *testing.T) {
	ta := mustStartAgent(t, nil)
	ta.mustReady()

	var list []protocol.Sync
	res := ta.control(http.MethodGet, "/api/syncs", nil)
	res.json(t, &list)
	if res.Status != http.StatusOK || len(list) != 2 {
		t.Fatalf("index = %d %s", res.Status, res.Body)
	}

	res = ta.control(http.MethodPost, "/api/syncs", `{"source_platform_id":1,"source_model":"users","target_platform_id":2,"target_model":"users"}`)
	var created protocol.Sync
	res.json(t, &created)
	if res.Status != http.StatusCreated || created.ID != 9 || !created.Status || created.IfExists != "update" ||
		created.Title != "shop.example (users) to blog.example (users)" {
		t.Fatalf("store = %d %s", res.Status, res.Body)
	}
	for name, body := range map[string]string{
		"not about this platform": `{"source_platform_id":1,"source_model":"a","target_platform_id":3,"target_model":"a"}`,
		"same platform and model": `{"source_platform_id":2,"source_model":"a","target_platform_id":2,"target_model":"a"}`,
		"no model":                `{"source_platform_id":1,"target_platform_id":2}`,
		"unknown field":           `{"source_platform_id":1,"source_model":"a","target_platform_id":2,"target_model":"a","x":1}`,
	} {
		if res := ta.control(http.MethodPost, "/api/syncs", body); res.Status != http.StatusBadRequest {
			t.Errorf("store %s = %d %s, want 400", name, res.Status, res.Body)
		}
	}

	res = ta.control(http.MethodPut, "/api/syncs/9", `{"status":false,"field_mappings":{"name":"title"},"sync_all_fields":false}`)
	var updated protocol.Sync
	res.json(t, &updated)
	if res.Status != http.StatusOK || updated.Status || updated.FieldMappings["name"] != "title" || updated.SourceModel != "users" {
		t.Fatalf("update = %d %s", res.Status, res.Body)
	}
	res = ta.control(http.MethodPut, "/api/syncs/9", `{"field_mappings":{"email":"mail"}}`)
	var replaced protocol.Sync
	res.json(t, &replaced)
	if len(replaced.FieldMappings) != 1 || replaced.FieldMappings["email"] != "mail" {
		t.Fatalf("field_mappings are replaced, not merged: %s", res.Body)
	}

	res = ta.control(http.MethodGet, "/api/syncs/9", nil)
	var shown protocol.Sync
	res.json(t, &shown)
	if res.Status != http.StatusOK || shown.ID != 9 {
		t.Fatalf("show = %d %s", res.Status, res.Body)
	}

	res = ta.control(http.MethodGet, "/api/platform/1/sync", nil)
	var ofPlatform []protocol.Sync
	res.json(t, &ofPlatform)
	if res.Status != http.StatusOK || len(ofPlatform) != 2 || ofPlatform[0].ID != 7 || ofPlatform[1].ID != 9 {
		t.Fatalf("platform 1 syncs = %d %s", res.Status, res.Body)
	}
	if res := ta.control(http.MethodGet, "/api/platform/99/sync", nil); res.Status != http.StatusNotFound {
		t.Fatalf("syncs of an unknown platform = %d %s, want 404", res.Status, res.Body)
	}

	if res := ta.control(http.MethodDelete, "/api/syncs/9", nil); res.Status != http.StatusNoContent {
		t.Fatalf("destroy = %d %s", res.Status, res.Body)
	}
	if res := ta.control(http.MethodGet, "/api/syncs/9", nil); res.Status != http.StatusNotFound {
		t.Fatalf("show of a destroyed sync = %d %s", res.Status, res.Body)
	}

	// Entity edits keep the revision: the control center's next PUT replaces them.
	ta.putState(testState(1))
	var st protocol.State
	ta.control(http.MethodGet, "/api/state", nil).json(t, &st)
	if len(st.Syncs) != 2 {
		t.Fatalf("syncs after a PUT of the same revision = %+v", st.Syncs)
	}
}
