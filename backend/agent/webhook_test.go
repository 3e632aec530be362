package agent_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// schemaCheck is a CheckBatch that knows the columns of posts and pages.
func schemaCheck(_ context.Context, s protocol.Sync, b *protocol.Batch) error {
	columns := map[string]bool{"id": true, "ulid": true, "title": true, "slug": true}
	for _, c := range b.Changes {
		if s.TargetModel != "posts" && s.TargetModel != "pages" {
			return protocol.Errorf(protocol.CodeUnknownModel, "no table %q", s.TargetModel)
		}
		for col := range c.Data {
			if !columns[col] {
				return protocol.Errorf(protocol.CodeUnknownColumn, "%s has no column %q", s.TargetModel, col)
			}
		}
	}
	return nil
}

func TestWebhook_Accepts(t *testing.T) {
	ta := mustStartAgent(t, nil)
	ta.mustReady()

	res := ta.deliver(sourceID, testBatch("batch-1", 7, sourceID, 1, 2, 3))
	if got, want := string(res.Body), `{"status":"accepted","batch_id":"batch-1","count":3}`+"\n"; res.Status != http.StatusAccepted || got != want {
		t.Fatalf("= %d %s, want 202 %s", res.Status, got, want)
	}
	waitFor(t, "batch-1 applied", func() bool { return len(ta.applier.Applied()) == 1 })

	res = ta.deliver(sourceID, testBatch("batch-1", 7, sourceID, 1, 2, 3))
	if got, want := string(res.Body), `{"status":"duplicate"}`+"\n"; res.Status != http.StatusOK || got != want {
		t.Fatalf("duplicate = %d %s, want 200 %s", res.Status, got, want)
	}

	ta.restart()
	res = ta.deliver(sourceID, testBatch("batch-1", 7, sourceID, 1, 2, 3))
	if res.Status != http.StatusOK || !strings.Contains(string(res.Body), "duplicate") {
		t.Fatalf("duplicate after restart = %d %s", res.Status, res.Body)
	}
	time.Sleep(20 * time.Millisecond)
	if got := ta.applier.Applied(); len(got) != 1 {
		t.Fatalf("applied %v, want batch-1 once", got)
	}

	// An empty batch is accepted with a count of 0.
	res = ta.deliver(sourceID, testBatch("batch-empty", 7, sourceID))
	if got, want := string(res.Body), `{"status":"accepted","batch_id":"batch-empty","count":0}`+"\n"; got != want {
		t.Fatalf("empty batch = %d %s, want %s", res.Status, got, want)
	}

	// A Standard Webhooks library verifies with the secret base64(K_pair): the same bytes.
	b := testBatch("batch-sw", 7, sourceID, 4)
	body := mustJSON(t, b)
	ts := time.Now().Unix()
	sig := protocol.Signature(pairKey(sourceID), protocol.DataContent("batch-sw", ts, body))
	res = ta.deliverRaw("1", protocol.Headers{ID: "batch-sw", Timestamp: protocol.FormatID(ts),
		Signature: protocol.Signature([]byte("retired key"), []byte("x")) + " " + sig}, body)
	if res.Status != http.StatusAccepted {
		t.Fatalf("rotated signature header = %d %s", res.Status, res.Body)
	}
}

func TestWebhook_Refusals(t *testing.T) {
	ta := mustStartAgent(t, func(o *agent.Options) { o.BodyLimit = 64 << 10 })
	ta.applier.CheckBatchFunc = schemaCheck
	ta.mustReady()

	signed := func(sender int64, key []byte, b protocol.Batch) (string, protocol.Headers, []byte) {
		body := mustJSON(t, b)
		return protocol.FormatID(sender), protocol.Signer{}.SignData(b.BatchID, body, key), body
	}
	withData := func(b protocol.Batch, k string, v any) protocol.Batch {
		b.Changes[0].Data[k] = v
		return b
	}
	cases := []struct {
		name   string
		build  func(id string) (string, protocol.Headers, []byte)
		status int
		code   protocol.Code
	}{
		{"wrong key", func(id string) (string, protocol.Headers, []byte) {
			return signed(sourceID, []byte("some-other-key-some-other-key-000"), testBatch(id, 7, sourceID, 1))
		}, 401, protocol.CodeUnauthorized},
		{"control key instead of pair key", func(id string) (string, protocol.Headers, []byte) {
			return signed(sourceID, ctlKey(), testBatch(id, 7, sourceID, 1))
		}, 401, protocol.CodeUnauthorized},
		{"pair key of another sender", func(id string) (string, protocol.Headers, []byte) {
			return signed(sourceID, pairKey(otherID), testBatch(id, 7, sourceID, 1))
		}, 401, protocol.CodeUnauthorized},
		{"tampered body", func(id string) (string, protocol.Headers, []byte) {
			s, h, body := signed(sourceID, pairKey(sourceID), testBatch(id, 7, sourceID, 1))
			return s, h, bytes.Replace(body, []byte("Hello"), []byte("Hallo"), 1)
		}, 401, protocol.CodeUnauthorized},
		{"stale timestamp", func(id string) (string, protocol.Headers, []byte) {
			b := testBatch(id, 7, sourceID, 1)
			body := mustJSON(t, b)
			old := protocol.Signer{Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }}
			return "1", old.SignData(id, body, pairKey(sourceID)), body
		}, 401, protocol.CodeStaleTimestamp},
		{"no sender header", func(id string) (string, protocol.Headers, []byte) {
			_, h, body := signed(sourceID, pairKey(sourceID), testBatch(id, 7, sourceID, 1))
			return "", h, body
		}, 401, protocol.CodeUnauthorized},
		{"sender that is not the sync's source", func(id string) (string, protocol.Headers, []byte) {
			// Platform 3 holds a valid K_pair(3->2) for sync 8, but sync 7's source is 1.
			return signed(otherID, pairKey(otherID), testBatch(id, 7, otherID, 1))
		}, 403, protocol.CodeUnauthorized},
		{"body source differs from the signing sender", func(id string) (string, protocol.Headers, []byte) {
			return signed(otherID, pairKey(otherID), testBatch(id, 7, sourceID, 1))
		}, 403, protocol.CodeUnauthorized},
		{"unknown sync", func(id string) (string, protocol.Headers, []byte) {
			return signed(sourceID, pairKey(sourceID), testBatch(id, 99, sourceID, 1))
		}, 403, protocol.CodeUnauthorized},
		{"model the sync does not name", func(id string) (string, protocol.Headers, []byte) {
			b := testBatch(id, 7, sourceID, 1)
			b.Changes[0].Model = "users"
			return signed(sourceID, pairKey(sourceID), b)
		}, 422, protocol.CodeUnknownModel},
		{"unknown column", func(id string) (string, protocol.Headers, []byte) {
			return signed(sourceID, pairKey(sourceID), withData(testBatch(id, 7, sourceID, 1), "nope", 1))
		}, 422, protocol.CodeUnknownColumn},
		{"column name crafted as SQL", func(id string) (string, protocol.Headers, []byte) {
			return signed(sourceID, pairKey(sourceID), withData(testBatch(id, 7, sourceID, 1),
				`title"; DROP TABLE posts; --`, "x"))
		}, 422, protocol.CodeUnknownColumn},
		{"body over the limit", func(id string) (string, protocol.Headers, []byte) {
			return signed(sourceID, pairKey(sourceID), withData(testBatch(id, 7, sourceID, 1), "title",
				strings.Repeat("x", 70<<10)))
		}, 413, protocol.CodeTooLarge},
		{"unknown JSON field", func(id string) (string, protocol.Headers, []byte) {
			body := []byte(`{"batch_id":"` + id + `","source_platform_id":1,"sync_id":7,"changes":[],"extra":true}`)
			return "1", protocol.Signer{}.SignData(id, body, pairKey(sourceID)), body
		}, 400, protocol.CodeBadRequest},
		{"unknown JSON field in a change", func(id string) (string, protocol.Headers, []byte) {
			body := []byte(`{"batch_id":"` + id + `","source_platform_id":1,"sync_id":7,"changes":[{"seq":1,` +
				`"event_type":"deleted","model":"posts","key":{"field":"ulid","value":"x"},"should_delete":false,` +
				`"origin_platform_id":1,"changed_at":"2026-11-26T12:00:00Z","oops":1}]}`)
			return "1", protocol.Signer{}.SignData(id, body, pairKey(sourceID)), body
		}, 400, protocol.CodeBadRequest},
		{"webhook-id is not the batch id", func(id string) (string, protocol.Headers, []byte) {
			body := mustJSON(t, testBatch(id, 7, sourceID, 1))
			return "1", protocol.Signer{}.SignData(id+"-other", body, pairKey(sourceID)), body
		}, 400, protocol.CodeBadRequest},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "refused-" + protocol.FormatID(int64(i))
			sender, h, body := c.build(id)
			res := ta.deliverRaw(sender, h, body)
			if res.Status != c.status || res.errorCode() != c.code {
				t.Fatalf("= %d %s, want %d %s", res.Status, res.Body, c.status, c.code)
			}
			mustNotBeStored(t, ta, id)
		})
	}

	t.Run("disabled sync", func(t *testing.T) {
		st := testState(2)
		st.Syncs[0].Status = false
		ta.putState(st)
		defer ta.putState(testState(3))
		res := ta.deliver(sourceID, testBatch("refused-disabled", 7, sourceID, 1))
		if res.Status != http.StatusForbidden || res.errorCode() != protocol.CodeUnauthorized {
			t.Fatalf("= %d %s, want 403 unauthorized", res.Status, res.Body)
		}
		mustNotBeStored(t, ta, "refused-disabled")
	})

	t.Run("locked or read-only platform", func(t *testing.T) {
		for i, edit := range []func(*protocol.Platform){
			func(p *protocol.Platform) { p.Locked = true },
			func(p *protocol.Platform) { p.ReadOnly = true },
		} {
			st := testState(int64(10 + 2*i))
			edit(&st.Platforms[1])
			ta.putState(st)
			id := "refused-locked-" + protocol.FormatID(int64(i))
			res := ta.deliver(sourceID, testBatch(id, 7, sourceID, 1))
			if res.Status != http.StatusLocked || res.errorCode() != protocol.CodeLocked {
				t.Fatalf("= %d %s, want 423 locked", res.Status, res.Body)
			}
			mustNotBeStored(t, ta, id)
			ta.putState(testState(int64(11 + 2*i)))
		}
	})

	if got := ta.applier.Applied(); len(got) != 0 {
		t.Fatalf("refused batches were applied: %v", got)
	}
}

func TestWebhook_SwitchesAndEnrollment(t *testing.T) {
	t.Run("disabled webhook answers 404", func(t *testing.T) {
		ta := mustStartAgent(t, func(o *agent.Options) { o.WebhookDisabled = true })
		ta.mustReady()
		res := ta.deliver(sourceID, testBatch("b1", 7, sourceID, 1))
		if res.Status != http.StatusNotFound || res.errorCode() != protocol.CodeNotFound {
			t.Fatalf("= %d %s, want 404", res.Status, res.Body)
		}
		mustNotBeStored(t, ta, "b1")
	})
	t.Run("not enrolled", func(t *testing.T) {
		ta := mustStartAgent(t, nil)
		res := ta.deliver(sourceID, testBatch("b1", 7, sourceID, 1))
		if res.Status != http.StatusConflict || res.errorCode() != protocol.CodeNotEnrolled {
			t.Fatalf("= %d %s, want 409 not_enrolled", res.Status, res.Body)
		}
	})
	t.Run("custom webhook path", func(t *testing.T) {
		ta := mustStartAgent(t, func(o *agent.Options) { o.WebhookPath = "/hooks/s3cr3t-path" })
		ta.mustReady()
		b := testBatch("b1", 7, sourceID, 1)
		body := mustJSON(t, b)
		req, _ := http.NewRequest(http.MethodPost, ta.srv.URL+"/hooks/s3cr3t-path", bytes.NewReader(body))
		protocol.Signer{}.SignData("b1", body, pairKey(sourceID)).Set(req.Header)
		req.Header.Set(protocol.HeaderPlatform, "1")
		if res := ta.do(req); res.Status != http.StatusAccepted {
			t.Fatalf("= %d %s", res.Status, res.Body)
		}
		if res := ta.deliver(sourceID, testBatch("b2", 7, sourceID, 2)); res.Status != http.StatusNotFound {
			t.Fatalf("default path = %d %s, want 404", res.Status, res.Body)
		}
	})
}

func mustNotBeStored(tb testing.TB, ta *testAgent, batchID string) {
	tb.Helper()
	if _, err := ta.store.LookupBatch(context.Background(), batchID); !errors.Is(err, state.ErrNotFound) {
		tb.Fatalf("batch %s was stored (err %v)", batchID, err)
	}
}
