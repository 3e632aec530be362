package fleet

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

func TestClient_RotateToken(t *testing.T) {
	ctx := t.Context()
	a := newFakeAgent(t, testSyncToken, true)
	a.enroll(testPlatform(1, a.URL()), testToken(1))
	c := mustClient(t, a, 1)
	newToken := testToken(101)

	if err := c.RotateToken(ctx, newToken); err != nil {
		t.Fatal(err)
	}
	_, token, pending, reqs := a.snapshot()
	if token != newToken || pending != "" {
		t.Fatal("the agent did not switch to the new token")
	}
	last := reqs[len(reqs)-1]
	if last.Method != http.MethodGet || last.RequestURI != "/api/state" || !last.Verified {
		t.Fatalf("last request = %+v, want the confirming GET /api/state", last)
	}
	// The client now signs with the new key; a client with the old token is refused.
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("Status with the rotated client: %v", err)
	}
	if _, err := mustClient(t, a, 1).Status(ctx); !IsCode(err, protocol.CodeUnauthorized) {
		t.Fatalf("old token: err = %v, want unauthorized", err)
	}
	if err := c.RotateToken(ctx, "short"); err == nil {
		t.Fatal("a short token was accepted")
	}
}

func TestClient_RotateTokenUnconfirmedKeepsOldToken(t *testing.T) {
	ctx := t.Context()
	a := newFakeAgent(t, testSyncToken, false)
	a.enroll(testPlatform(1, a.URL()), testToken(1))
	a.set(func(a *fakeAgent) { a.failConfirm = true })
	c := mustClient(t, a, 1, func(o *ClientOptions) { o.Retries = -1 })

	err := c.RotateToken(ctx, testToken(101))
	var re *RotationError
	if !errors.As(err, &re) || re.Stage != StageConfirm {
		t.Fatalf("err = %v, want a RotationError at the confirm stage", err)
	}
	// The client and the agent both still work with the old token.
	if _, err := c.GetState(ctx); err != nil {
		t.Fatalf("old token after a failed confirmation: %v", err)
	}
	if _, _, pending, _ := a.snapshot(); pending != testToken(101) {
		t.Fatal("the agent should still hold the new token as pending")
	}
}

func TestSyncer_RotatePlatformToken(t *testing.T) {
	ctx := t.Context()
	keyring := func(tf *testFleet, key string) string {
		v, err := tf.secrets.Get(ctx, key)
		if errors.Is(err, secrets.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	t.Run("success", func(t *testing.T) {
		tf := newTestFleet(t, 2, true)
		s := newTestSyncer(tf, SyncerOptions{})
		t.Cleanup(s.Close)
		if rep, err := s.SyncPlatforms(ctx, SyncOptions{}); err != nil || rep.OK != 2 {
			t.Fatalf("enroll: %+v, %v", rep, err)
		}
		if err := s.RotatePlatformToken(ctx, 2); err != nil {
			t.Fatal(err)
		}
		newToken := keyring(tf, secrets.PlatformKey(2))
		if newToken == testToken(2) || len(newToken) != 43 {
			t.Fatal("the keyring does not hold a new generated token")
		}
		if keyring(tf, PendingTokenKey(2)) != "" {
			t.Fatal("the pending token was left behind")
		}
		if _, token, pending, _ := tf.agent(2).snapshot(); token != newToken || pending != "" {
			t.Fatal("the agent does not use the new token")
		}
		if tf.catalog.revision() != 11 {
			t.Fatalf("revision = %d, want 11 (peers' pair keys changed)", tf.catalog.revision())
		}
		// The next push hands platform 1 the pair key derived from the new token.
		rep, err := s.SyncPlatforms(ctx, SyncOptions{})
		if err != nil || rep.OK != 2 {
			t.Fatalf("push after rotation: %+v, %v", rep, err)
		}
		st, _, _, _ := tf.agent(1).snapshot()
		if st.Peers[0].Key != pairKeyBySpec(newToken, testSyncToken, 1, 2) {
			t.Fatal("platform 1 did not receive the pair key of the new token")
		}
	})

	t.Run("unconfirmed rotation keeps the old token working", func(t *testing.T) {
		tf := newTestFleet(t, 2, false)
		s := newTestSyncer(tf, SyncerOptions{Client: ClientOptions{Retries: -1}})
		t.Cleanup(s.Close)
		if _, err := s.SyncPlatforms(ctx, SyncOptions{}); err != nil {
			t.Fatal(err)
		}
		tf.agent(2).set(func(a *fakeAgent) { a.failConfirm = true })
		err := s.RotatePlatformToken(ctx, 2)
		var re *RotationError
		if !errors.As(err, &re) || re.Stage != StageConfirm {
			t.Fatalf("err = %v, want a RotationError at the confirm stage", err)
		}
		if keyring(tf, secrets.PlatformKey(2)) != testToken(2) {
			t.Fatal("the keyring lost the old token")
		}
		pending := keyring(tf, PendingTokenKey(2))
		if pending == "" {
			t.Fatal("the new token is not kept as pending")
		}
		// The agent still accepts the old token.
		c := mustClient(t, tf.agent(2), 2)
		if _, err := c.GetState(ctx); err != nil {
			t.Fatalf("old token refused after an unconfirmed rotation: %v", err)
		}

		// Once the agent answers again, Sync Platforms finishes the rotation first.
		tf.agent(2).set(func(a *fakeAgent) { a.failConfirm = false })
		rep, err := s.SyncPlatforms(ctx, SyncOptions{})
		if err != nil || rep.OK != 2 {
			t.Fatalf("push: %+v, %v", rep, err)
		}
		if keyring(tf, secrets.PlatformKey(2)) != pending || keyring(tf, PendingTokenKey(2)) != "" {
			t.Fatal("the interrupted rotation was not finished")
		}
		if _, token, _, _ := tf.agent(2).snapshot(); token != pending {
			t.Fatal("the agent does not use the new token")
		}
		if rep.Revision != 11 {
			t.Fatalf("revision = %d, want 11", rep.Revision)
		}
	})

	t.Run("refused rotation drops the new token", func(t *testing.T) {
		tf := newTestFleet(t, 1, false)
		tf.agent(1).enroll(testPlatform(1, tf.agent(1).URL()), testToken(1))
		tf.agent(1).set(func(a *fakeAgent) { a.refuseRotation = true })
		s := newTestSyncer(tf, SyncerOptions{})
		t.Cleanup(s.Close)
		err := s.RotatePlatformToken(ctx, 1)
		var re *RotationError
		if !errors.As(err, &re) || re.Stage != StageSend || !IsCode(err, protocol.CodeBadRequest) {
			t.Fatalf("err = %v, want a refusal at the send stage", err)
		}
		if keyring(tf, PendingTokenKey(1)) != "" || keyring(tf, secrets.PlatformKey(1)) != testToken(1) {
			t.Fatal("a refused rotation changed the keyring")
		}
		if _, err := mustClient(t, tf.agent(1), 1).GetState(ctx); err != nil {
			t.Fatalf("old token refused after a refused rotation: %v", err)
		}
	})

	t.Run("a pending token the agent never received is dropped", func(t *testing.T) {
		tf := newTestFleet(t, 2, false)
		if err := tf.secrets.Set(ctx, PendingTokenKey(2), testToken(202)); err != nil {
			t.Fatal(err)
		}
		tf.agent(2).enroll(testPlatform(2, tf.agent(2).URL()), testToken(2))
		s := newTestSyncer(tf, SyncerOptions{})
		t.Cleanup(s.Close)
		rep, err := s.SyncPlatforms(ctx, SyncOptions{})
		if err != nil || rep.OK != 2 {
			t.Fatalf("push: %+v, %v", rep, err)
		}
		if keyring(tf, PendingTokenKey(2)) != "" || keyring(tf, secrets.PlatformKey(2)) != testToken(2) {
			t.Fatal("the stray pending token was not dropped, or the token changed")
		}
	})

	t.Run("unknown platform", func(t *testing.T) {
		tf := newTestFleet(t, 1, false)
		err := newTestSyncer(tf, SyncerOptions{}).RotatePlatformToken(context.Background(), 7)
		if !errors.Is(err, ErrUnknownPlatform) {
			t.Fatalf("err = %v", err)
		}
	})
}
