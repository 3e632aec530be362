package fleet

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// pairKeyBySpec computes K_pair(A->B) from PROTOCOL.md section 2, without the protocol
// package: HMAC-SHA256(key = platform_token(B) + sync_token, "mooxsync/v1 pair A B").
func pairKeyBySpec(targetToken, syncToken string, a, b int64) string {
	m := hmac.New(sha256.New, []byte(targetToken+syncToken))
	fmt.Fprintf(m, "mooxsync/v1 pair %d %d", a, b)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestDesiredState(t *testing.T) {
	platforms := []FleetPlatform{
		{Platform: testPlatform(3, "https://c.example:7443"), TLSFingerprint: "sha256:" + strings.Repeat("c", 64)},
		{Platform: testPlatform(1, "https://a.example:7443"), TLSFingerprint: "sha256:" + strings.Repeat("a", 64)},
		{Platform: testPlatform(2, "http://127.0.0.1:7001"), WebhookPath: "/hooks/moox"},
		{Platform: testPlatform(4, "https://d.example:7443"), TLSFingerprint: "sha256:" + strings.Repeat("d", 64)},
	}
	sync := func(id, src, dst int64, model string, enabled bool) protocol.Sync {
		return protocol.Sync{ID: id, Status: enabled, SourcePlatformID: src, SourceModel: model,
			TargetPlatformID: dst, TargetModel: model, IfExists: protocol.IfExistsUpdate}
	}
	f := Fleet{Revision: 42, Platforms: platforms, Syncs: []protocol.Sync{
		sync(9, 1, 3, "users", true),  // 1 -> 3
		sync(5, 1, 2, "posts", true),  // 1 -> 2
		sync(6, 1, 2, "pages", true),  // 1 -> 2 again: one peer
		sync(7, 1, 4, "posts", false), // disabled: no peer for 4
		sync(8, 3, 1, "posts", true),  // 1 is target: no peer for 3 from this sync
		sync(10, 2, 3, "posts", true), // not about 1
	}}
	tokens := map[int64]string{1: testToken(1), 2: testToken(2), 3: testToken(3), 4: testToken(4)}

	st, err := DesiredState(f, 1, testSyncToken, tokens)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != 42 || st.Platform != (protocol.PlatformRef{ID: 1, Name: "P1", Domain: "p1.example",
		AgentURL: "https://a.example:7443"}) {
		t.Fatalf("revision/platform = %d %+v", st.Revision, st.Platform)
	}
	if len(st.Platforms) != 4 {
		t.Fatalf("platforms = %d, want all 4", len(st.Platforms))
	}
	for i, p := range st.Platforms {
		if p.ID != int64(i+1) {
			t.Fatalf("platforms not sorted by id: %+v", st.Platforms)
		}
	}
	var syncIDs []int64
	for _, s := range st.Syncs {
		syncIDs = append(syncIDs, s.ID)
	}
	if fmt.Sprint(syncIDs) != "[5 6 7 8 9]" {
		t.Fatalf("syncs = %v, want [5 6 7 8 9] (those where 1 is source or target)", syncIDs)
	}
	want := []protocol.Peer{
		{PlatformID: 2, URL: "http://127.0.0.1:7001", WebhookPath: "/hooks/moox",
			Key: pairKeyBySpec(testToken(2), testSyncToken, 1, 2)},
		{PlatformID: 3, URL: "https://c.example:7443", WebhookPath: protocol.DefaultWebhookPath,
			Key: pairKeyBySpec(testToken(3), testSyncToken, 1, 3), TLSFingerprint: "sha256:" + strings.Repeat("c", 64)},
	}
	if fmt.Sprintf("%+v", st.Peers) != fmt.Sprintf("%+v", want) {
		t.Fatalf("peers =\n%+v\nwant\n%+v", st.Peers, want)
	}

	// The JSON carries no token, in whatever form.
	raw := string(mustJSON(t, st))
	for id, tok := range tokens {
		for _, form := range []string{tok, base64.StdEncoding.EncodeToString([]byte(tok)),
			base64.StdEncoding.EncodeToString(protocol.ControlKey(tok, testSyncToken))} {
			if strings.Contains(raw, form) {
				t.Fatalf("desired state contains the token of platform %d", id)
			}
		}
	}
	if strings.Contains(raw, testSyncToken) {
		t.Fatal("desired state contains the sync token")
	}

	t.Run("platform with no enabled source sync", func(t *testing.T) {
		st, err := DesiredState(f, 4, testSyncToken, map[int64]string{})
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Peers) != 0 || len(st.Syncs) != 1 || st.Peers == nil {
			t.Fatalf("state of 4 = %+v, want sync 7 only and an empty peer list", st)
		}
	})
	t.Run("missing peer token", func(t *testing.T) {
		_, err := DesiredState(f, 1, testSyncToken, map[int64]string{2: testToken(2)})
		if !errors.Is(err, ErrMissingToken) {
			t.Fatalf("err = %v, want ErrMissingToken", err)
		}
	})
	t.Run("unknown platform", func(t *testing.T) {
		if _, err := DesiredState(f, 99, testSyncToken, tokens); !errors.Is(err, ErrUnknownPlatform) {
			t.Fatalf("err = %v, want ErrUnknownPlatform", err)
		}
	})
	t.Run("peer not in the fleet", func(t *testing.T) {
		g := f
		g.Syncs = append(g.Syncs[:0:0], sync(11, 1, 77, "posts", true))
		if _, err := DesiredState(g, 1, testSyncToken, tokens); !errors.Is(err, ErrUnknownPlatform) {
			t.Fatalf("err = %v, want ErrUnknownPlatform", err)
		}
	})
}
