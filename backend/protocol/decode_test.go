package protocol_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

const sampleBatch = `{
  "batch_id": "01JDAAAAAAAAAAAAAAAAAAAAAA",
  "source_platform_id": 1,
  "sync_id": 7,
  "changes": [
    {"seq": 1234, "event_type": "updated", "model": "posts",
     "key": {"field": "ulid", "value": "01HZ"},
     "data": {"ulid": "01HZ", "title": "Hello", "slug": "hello", "views": 9007199254740993},
     "should_delete": false, "origin_platform_id": 1,
     "changed_at": "2026-11-26T12:00:00.123Z"},
    {"seq": 1235, "event_type": "deleted", "model": "posts",
     "key": {"field": "ulid", "value": "01HY"},
     "should_delete": false, "origin_platform_id": 1,
     "changed_at": "2026-11-26T12:00:01Z"}
  ]
}`

func TestDecodeBatch(t *testing.T) {
	b, err := protocol.DecodeBatch([]byte(sampleBatch))
	if err != nil {
		t.Fatal(err)
	}
	if b.SyncID != 7 || len(b.Changes) != 2 || b.Changes[1].Data != nil {
		t.Fatalf("decoded %+v", b)
	}
	if n, ok := b.Changes[0].Data["views"].(json.Number); !ok || n.String() != "9007199254740993" {
		t.Fatalf("large integer changed: %#v", b.Changes[0].Data["views"])
	}
	for name, body := range map[string]string{
		"unknown top-level field": strings.Replace(sampleBatch, `"sync_id": 7,`, `"sync_id": 7, "x": 1,`, 1),
		"unknown change field":    strings.Replace(sampleBatch, `"seq": 1234,`, `"seq": 1234, "extra": true,`, 1),
		"bad event type":          strings.Replace(sampleBatch, `"updated"`, `"upserted"`, 1),
		"delete with data":        strings.Replace(sampleBatch, `"event_type": "deleted", "model": "posts",`, `"event_type": "deleted", "model": "posts", "data": {},`, 1),
		"update without data":     strings.Replace(sampleBatch, `"data": {"ulid": "01HZ", "title": "Hello", "slug": "hello", "views": 9007199254740993},`, ``, 1),
		"bad batch id":            strings.Replace(sampleBatch, `01JDAAAAAAAAAAAAAAAAAAAAAA`, `../etc`, 1),
		"zero sync id":            strings.Replace(sampleBatch, `"sync_id": 7`, `"sync_id": 0`, 1),
		"key without value":       strings.Replace(sampleBatch, `"value": "01HY"`, `"value": null`, 1),
		"object key value":        strings.Replace(sampleBatch, `"value": "01HY"`, `"value": {"a":1}`, 1),
		"bad changed_at":          strings.Replace(sampleBatch, `2026-11-26T12:00:01Z`, `yesterday`, 1),
		"trailing data":           sampleBatch + `{}`,
		"not json":                `batch`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := protocol.DecodeBatch([]byte(body))
			if protocol.CodeOf(err) != protocol.CodeBadRequest {
				t.Fatalf("got %v, want bad_request", err)
			}
		})
	}
}

func TestSync_IDList(t *testing.T) {
	var s protocol.Sync
	if err := json.Unmarshal([]byte(`{"sync_ids":[1,"a",9007199254740993]}`), &s); err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.SyncIDs, ",") != "1,a,9007199254740993" {
		t.Fatalf("sync_ids %v", s.SyncIDs)
	}
	if err := json.Unmarshal([]byte(`{"sync_ids":null}`), &s); err != nil || s.SyncIDs != nil {
		t.Fatalf("null: %v %v", s.SyncIDs, err)
	}
	if err := json.Unmarshal([]byte(`{"sync_ids":[true]}`), &s); err == nil {
		t.Fatal("accepted a boolean id")
	}
}

func TestState_Redacted(t *testing.T) {
	s := protocol.State{Peers: []protocol.Peer{{PlatformID: 2, Key: "secret"}}}
	r := s.Redacted()
	if r.Peers[0].Key != "" || s.Peers[0].Key != "secret" {
		t.Fatalf("redacted %+v original %+v", r.Peers, s.Peers)
	}
}

func TestMemorySeenStore(t *testing.T) {
	ctx := context.Background()
	m := protocol.NewMemorySeenStore()
	now := time.Unix(1000, 0)
	if seen, _ := m.Remember(ctx, "a", now); seen {
		t.Fatal("fresh id reported seen")
	}
	if seen, _ := m.Remember(ctx, "a", now.Add(protocol.ReplayWindow-time.Second)); !seen {
		t.Fatal("replay inside the window not detected")
	}
	if seen, _ := m.Remember(ctx, "a", now.Add(protocol.ReplayWindow)); seen {
		t.Fatal("id still remembered after the window")
	}
}
