package app

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/reconcile"
)

func TestSyncService_ReconcileRuns(t *testing.T) {
	ta := mustOpenApp(t)
	syncToken := ta.mustSyncToken(t)
	src := ta.mustPlatform(t, "Shop", "http://127.0.0.1:1")
	dst := ta.mustPlatform(t, "Blog", "http://127.0.0.1:2")
	token, _ := ta.Platforms.RevealToken(src.ID)
	run := agent.ReconcileRun{RunID: "r1", Trigger: "initial", State: "done",
		Progress: reconcile.Progress{Done: 3, Total: 3}, Report: reconcile.Report{SyncID: 1, Repaired: 3, Errors: []string{}}}
	fa := startFakeAgent(t, token, syncToken, func(w http.ResponseWriter, r *http.Request) {
		protocol.WriteJSON(w, http.StatusOK, agent.ReconcileRuns{Runs: []agent.ReconcileRun{run}})
	})
	if _, err := ta.Platforms.Save(PlatformInput{ID: src.ID, Name: src.Name, Domain: src.Domain, AgentURL: fa.srv.URL}); err != nil {
		t.Fatal(err)
	}
	sy, err := ta.Syncs.Save(SyncInput{SourcePlatformID: src.ID, SourceModel: "posts", TargetPlatformID: dst.ID,
		TargetModel: "posts", SyncAllFields: true, Interval: 60, Status: true})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := ta.Syncs.ReconcileRuns(sy.ID)
	if err != nil || len(runs) != 1 || runs[0].RunID != "r1" || runs[0].Repaired != 3 || runs[0].Progress.Total != 3 {
		t.Fatalf("ReconcileRuns = %+v, %v", runs, err)
	}
	uris, verified := fa.requests()
	if want := []string{"GET /api/syncs/" + protocol.FormatID(sy.ID) + "/reconcile"}; !reflect.DeepEqual(uris, want) ||
		!reflect.DeepEqual(verified, []bool{true}) {
		t.Fatalf("agent saw %v (verified %v), want %v signed", uris, verified, want)
	}
	_, err = ta.Syncs.ReconcileRuns(999)
	appErr(t, err, CodeNotFound, "")
}
