package protocol_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

func BenchmarkDecodeBatch1000(b *testing.B) {
	batch := protocol.Batch{BatchID: "01JDBATCH", SourcePlatformID: 1, SyncID: 7}
	for i := 0; i < 1000; i++ {
		u := fmt.Sprintf("01JD%022d", i)
		batch.Changes = append(batch.Changes, protocol.Change{Seq: int64(i + 1), EventType: "created", Model: "posts",
			Key: protocol.Key{Field: "ulid", Value: u},
			Data: map[string]any{"ulid": u, "slug": "post-" + u, "title": "Title " + u, "body": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris",
				"views": 12345, "published": true, "created_at": "2026-11-26T12:00:00Z", "updated_at": "2026-11-26T12:00:00Z"},
			OriginPlatformID: 1, ChangedAt: "2026-11-26T12:00:00.123Z"})
	}
	body, _ := json.Marshal(batch)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := protocol.DecodeBatch(body); err != nil {
			b.Fatal(err)
		}
	}
}
