package agent_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

const (
	newToken1 = "rotated-token-one-0123456789abcdefghijklmnopq"
	newToken2 = "rotated-token-two-0123456789abcdefghijklmnopq"
)

// fakeClock is a clock tests move by hand; it starts at the wall clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (a log destination).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rotationAgent is a ready agent (enrolled, testState(1)) on a fake clock, logging at debug
// level into a buffer.
type rotationAgent struct {
	*testAgent
	clk *fakeClock
	log *syncBuffer
}

func mustStartRotationAgent(t *testing.T) *rotationAgent {
	t.Helper()
	clk, logs := newFakeClock(), &syncBuffer{}
	ta := mustStartAgent(t, func(o *agent.Options) {
		o.Now = clk.Now
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ta.mustReady()
	t.Cleanup(func() {
		for _, tok := range []string{testPlatformToken, newToken1, newToken2} {
			if strings.Contains(logs.String(), tok) {
				t.Errorf("a platform token appears in the logs")
			}
		}
	})
	return &rotationAgent{testAgent: ta, clk: clk, log: logs}
}

// controlAs sends a control request signed with the K_ctl of token at the fake clock's time.
func (ra *rotationAgent) controlAs(token, method, uri string, body any) response {
	ra.t.Helper()
	return ra.controlWith(protocol.Signer{Now: ra.clk.Now}, method, uri, mustJSON(ra.t, body),
		protocol.ControlKey(token, testSyncToken))
}

// getStateAs is GET /api/state signed with the K_ctl of token; it returns the status.
func (ra *rotationAgent) getStateAs(token string) int {
	ra.t.Helper()
	return ra.controlAs(token, http.MethodGet, "/api/state", nil).Status
}

// rotate posts a new token signed with the K_ctl of signer and fails unless it is rotated.
func (ra *rotationAgent) rotate(signer, token string) {
	ra.t.Helper()
	res := ra.controlAs(signer, http.MethodPost, "/api/token", map[string]string{"platform_token": token})
	if got, want := string(res.Body), `{"status":"rotated"}`+"\n"; res.Status != http.StatusOK || got != want {
		ra.t.Fatalf("rotate = %d %s, want 200 %s", res.Status, res.Body, want)
	}
}

// deliverAs delivers a batch from sourceID signed with the pair key derived from token.
func (ra *rotationAgent) deliverAs(token string, b protocol.Batch) response {
	ra.t.Helper()
	body := mustJSON(ra.t, b)
	key := protocol.PairKey(protocol.ControlKey(token, testSyncToken), sourceID, selfID)
	h := protocol.Signer{Now: ra.clk.Now}.SignData(b.BatchID, body, key)
	return ra.deliverRaw(protocol.FormatID(sourceID), h, body)
}

func TestTokenRotation_FullCycle(t *testing.T) {
	ra := mustStartRotationAgent(t)
	old := testPlatformToken

	ra.rotate(old, newToken1)
	e, err := ra.store.Enrollment(context.Background())
	if err != nil || e.PlatformToken != newToken1 || e.PreviousToken != old || !e.RotationPending() {
		t.Fatalf("stored enrollment after rotation: pending=%v, new stored=%v, old kept=%v, err %v",
			e.RotationPending(), e.PlatformToken == newToken1, e.PreviousToken == old, err)
	}

	// Before the confirmation the old key still opens the control plane, and deliveries
	// verify under both pair keys.
	if s := ra.getStateAs(old); s != http.StatusOK {
		t.Fatalf("old key before confirmation = %d, want 200", s)
	}
	for i, tok := range []string{old, newToken1} {
		b := testBatch("pending-"+protocol.FormatID(int64(i)), 7, sourceID, int64(i+1))
		if res := ra.deliverAs(tok, b); res.Status != http.StatusAccepted {
			t.Fatalf("delivery %d before confirmation = %d %s", i, res.Status, res.Body)
		}
	}

	// The first request signed with the new key confirms the rotation.
	if s := ra.getStateAs(newToken1); s != http.StatusOK {
		t.Fatalf("new key = %d, want 200", s)
	}
	res := ra.controlAs(old, http.MethodGet, "/api/state", nil)
	if res.Status != http.StatusUnauthorized || res.errorCode() != protocol.CodeUnauthorized {
		t.Fatalf("old key after confirmation = %d %s, want 401 unauthorized", res.Status, res.Body)
	}
	if s := ra.getStateAs(newToken1); s != http.StatusOK {
		t.Fatalf("new key again = %d, want 200", s)
	}

	// Deliveries: both pair keys during the grace, also across a restart.
	ra.clk.Advance(10 * time.Minute)
	ra.restart()
	if s := ra.getStateAs(old); s != http.StatusUnauthorized {
		t.Fatalf("old key after restart = %d, want 401", s)
	}
	for i, tok := range []string{old, newToken1} {
		b := testBatch("grace-"+protocol.FormatID(int64(i)), 7, sourceID, int64(10+i))
		if res := ra.deliverAs(tok, b); res.Status != http.StatusAccepted {
			t.Fatalf("delivery %d in the grace = %d %s", i, res.Status, res.Body)
		}
	}

	// 15 minutes after the confirmation the old pair key is refused.
	ra.clk.Advance(5*time.Minute + time.Second)
	res = ra.deliverAs(old, testBatch("late-old", 7, sourceID, 20))
	if res.Status != http.StatusUnauthorized || res.errorCode() != protocol.CodeUnauthorized {
		t.Fatalf("old pair key after the grace = %d %s, want 401", res.Status, res.Body)
	}
	mustNotBeStored(t, ra.testAgent, "late-old")
	if res := ra.deliverAs(newToken1, testBatch("late-new", 7, sourceID, 21)); res.Status != http.StatusAccepted {
		t.Fatalf("new pair key after the grace = %d %s", res.Status, res.Body)
	}

	// The housekeeping then erases the previous token from the state.
	ra.agent.Housekeep(context.Background())
	e, err = ra.store.Enrollment(context.Background())
	if err != nil || e.PreviousToken != "" || e.PlatformToken != newToken1 {
		t.Fatalf("previous token kept after the grace (erased=%v), err %v", e.PreviousToken == "", err)
	}
	ra.restart()
	if res := ra.deliverAs(old, testBatch("later-old", 7, sourceID, 30)); res.Status != http.StatusUnauthorized {
		t.Fatalf("old pair key after restart = %d %s, want 401", res.Status, res.Body)
	}
	if s := ra.getStateAs(newToken1); s != http.StatusOK {
		t.Fatalf("new key after restart = %d, want 200", s)
	}
	// A new rotation starts from the new token.
	ra.rotate(newToken1, newToken2)
	if s := ra.getStateAs(testPlatformToken); s != http.StatusUnauthorized {
		t.Fatalf("first token after a second rotation = %d, want 401", s)
	}
	if ra.getStateAs(newToken1) != http.StatusOK || ra.getStateAs(newToken2) != http.StatusOK ||
		ra.getStateAs(newToken1) != http.StatusUnauthorized {
		t.Fatal("second rotation: want previous ok, new ok (confirming), previous refused")
	}
}

func TestTokenRotation_Interrupted(t *testing.T) {
	ra := mustStartRotationAgent(t)
	old := testPlatformToken
	ra.rotate(old, newToken1)
	// The control center never confirms; whatever it does with the old key keeps working,
	// also after restarts and long after.
	for i := range 3 {
		if s := ra.getStateAs(old); s != http.StatusOK {
			t.Fatalf("old key, round %d = %d, want 200", i, s)
		}
		if res := ra.deliverAs(old, testBatch("old-"+protocol.FormatID(int64(i)), 7, sourceID, int64(i+1))); res.Status != http.StatusAccepted {
			t.Fatalf("old pair key, round %d = %d %s", i, res.Status, res.Body)
		}
		ra.clk.Advance(time.Hour)
		ra.agent.Housekeep(context.Background())
		ra.restart()
	}
	e, err := ra.store.Enrollment(context.Background())
	if err != nil || !e.RotationPending() {
		t.Fatalf("rotation no longer pending after restarts: %v", err)
	}
	// A later confirmation still works.
	if s := ra.getStateAs(newToken1); s != http.StatusOK {
		t.Fatalf("new key = %d", s)
	}
	if s := ra.getStateAs(old); s != http.StatusUnauthorized {
		t.Fatalf("old key after the late confirmation = %d, want 401", s)
	}
}

func TestTokenRotation_SecondBeforeConfirmation(t *testing.T) {
	ra := mustStartRotationAgent(t)
	old := testPlatformToken
	ra.rotate(old, newToken1)
	ra.rotate(old, newToken2) // the first rotation's answer was lost; a new one replaces it
	if s := ra.getStateAs(newToken1); s != http.StatusUnauthorized {
		t.Fatalf("replaced pending token = %d, want 401", s)
	}
	if res := ra.deliverAs(newToken1, testBatch("replaced", 7, sourceID, 1)); res.Status != http.StatusUnauthorized {
		t.Fatalf("pair key of the replaced token = %d %s, want 401", res.Status, res.Body)
	}
	if s := ra.getStateAs(old); s != http.StatusOK {
		t.Fatalf("old key = %d, want 200", s)
	}
	ra.restart()
	if s := ra.getStateAs(old); s != http.StatusOK {
		t.Fatalf("old key after restart = %d, want 200", s)
	}
	if s := ra.getStateAs(newToken2); s != http.StatusOK {
		t.Fatalf("newest key = %d, want 200", s)
	}
	if s := ra.getStateAs(old); s != http.StatusUnauthorized {
		t.Fatalf("old key after confirmation = %d, want 401", s)
	}

	t.Run("same token again changes nothing", func(t *testing.T) {
		ra.rotate(newToken2, newToken2)
		if ra.getStateAs(newToken2) != http.StatusOK || ra.getStateAs(old) != http.StatusUnauthorized {
			t.Fatal("repeating the token in force changed the keys")
		}
	})
	t.Run("giving the previous token back withdraws a pending rotation", func(t *testing.T) {
		ra.rotate(newToken2, newToken1)
		ra.rotate(newToken2, newToken2)
		e, err := ra.store.Enrollment(context.Background())
		if err != nil || e.RotationPending() || e.PlatformToken != newToken2 {
			t.Fatalf("withdrawn rotation still pending=%v, err %v", e.RotationPending(), err)
		}
		if ra.getStateAs(newToken1) != http.StatusUnauthorized || ra.getStateAs(newToken2) != http.StatusOK {
			t.Fatal("withdrawn rotation: want its token refused and the one in force accepted")
		}
	})
}

func TestTokenRotation_Refusals(t *testing.T) {
	ra := mustStartRotationAgent(t)
	post := func(key []byte, body string) response {
		return ra.controlWith(protocol.Signer{Now: ra.clk.Now}, http.MethodPost, "/api/token", []byte(body), key)
	}
	ctl := protocol.ControlKey(testPlatformToken, testSyncToken)
	cases := []struct {
		name   string
		key    []byte
		body   string
		status int
		code   protocol.Code
	}{
		{"short token", ctl, `{"platform_token":"short"}`, 400, protocol.CodeBadRequest},
		{"31 characters", ctl, `{"platform_token":"` + strings.Repeat("x", 31) + `"}`, 400, protocol.CodeBadRequest},
		{"unknown field", ctl, `{"platform_token":"` + newToken1 + `","extra":1}`, 400, protocol.CodeBadRequest},
		{"trailing data", ctl, `{"platform_token":"` + newToken1 + `"} {}`, 400, protocol.CodeBadRequest},
		{"not JSON", ctl, `platform_token=` + newToken1, 400, protocol.CodeBadRequest},
		{"empty body", ctl, ``, 400, protocol.CodeBadRequest},
		{"signed with K_boot", bootKey(), `{"platform_token":"` + newToken1 + `"}`, 401, protocol.CodeUnauthorized},
		{"signed with the new key itself", protocol.ControlKey(newToken1, testSyncToken),
			`{"platform_token":"` + newToken1 + `"}`, 401, protocol.CodeUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := post(c.key, c.body)
			if res.Status != c.status || res.errorCode() != c.code {
				t.Fatalf("= %d %s, want %d %s", res.Status, res.Body, c.status, c.code)
			}
			if s := ra.getStateAs(testPlatformToken); s != http.StatusOK {
				t.Fatalf("token in force after a refused rotation = %d", s)
			}
			e, err := ra.store.Enrollment(context.Background())
			if err != nil || e.PlatformToken != testPlatformToken || e.PreviousToken != "" {
				t.Fatal("a refused rotation changed the stored token")
			}
		})
	}
	t.Run("exactly 32 characters", func(t *testing.T) {
		tok := strings.Repeat("y", 32)
		ra.rotate(testPlatformToken, tok)
		ra.rotate(testPlatformToken, testPlatformToken) // withdraw it again
	})
	t.Run("GET is not allowed", func(t *testing.T) {
		res := ra.controlAs(testPlatformToken, http.MethodGet, "/api/token", nil)
		if res.Status != http.StatusMethodNotAllowed {
			t.Fatalf("= %d %s, want 405", res.Status, res.Body)
		}
	})
	t.Run("not enrolled", func(t *testing.T) {
		fresh := mustStartAgent(t, nil)
		res := fresh.control(http.MethodPost, "/api/token", map[string]string{"platform_token": newToken1})
		if res.Status != http.StatusConflict || res.errorCode() != protocol.CodeNotEnrolled {
			t.Fatalf("= %d %s, want 409 not_enrolled", res.Status, res.Body)
		}
	})
	t.Run("replayed rotation", func(t *testing.T) {
		body := mustJSON(t, map[string]string{"platform_token": newToken1})
		h := protocol.Signer{Now: ra.clk.Now}.SignControl(http.MethodPost, "/api/token", body, ctl)
		send := func() response {
			req, _ := http.NewRequest(http.MethodPost, ra.srv.URL+"/api/token", bytes.NewReader(body))
			h.Set(req.Header)
			return ra.do(req)
		}
		if res := send(); res.Status != http.StatusOK {
			t.Fatalf("first = %d %s", res.Status, res.Body)
		}
		if res := send(); res.Status != http.StatusConflict || res.errorCode() != protocol.CodeReplayed {
			t.Fatalf("replay = %d %s, want 409 replayed", res.Status, res.Body)
		}
	})
	t.Run("the answer never shows a token", func(t *testing.T) {
		res := ra.controlAs(testPlatformToken, http.MethodPost, "/api/token", map[string]string{"platform_token": newToken2})
		if res.Status != http.StatusOK || strings.Contains(string(res.Body), newToken2) ||
			strings.Contains(string(res.Body), testPlatformToken) {
			t.Fatalf("= %d %s", res.Status, res.Body)
		}
	})
}

func TestTokenRotation_EnrollAgain(t *testing.T) {
	ra := mustStartRotationAgent(t)
	enroll := func(token string) response {
		body := mustJSON(t, protocol.EnrollRequest{Platform: testPlatform(selfID), PlatformToken: token})
		return ra.controlWith(protocol.Signer{Now: ra.clk.Now}, http.MethodPost, "/api/enroll", body, bootKey())
	}
	ra.rotate(testPlatformToken, newToken1)
	// While pending, enrolling again with either token is the same enrollment.
	if res := enroll(testPlatformToken); res.Status != http.StatusOK {
		t.Fatalf("enroll with the old token while pending = %d %s", res.Status, res.Body)
	}
	if res := enroll(newToken1); res.Status != http.StatusOK {
		t.Fatalf("enroll with the new token while pending = %d %s", res.Status, res.Body)
	}
	if ra.getStateAs(newToken1) != http.StatusOK {
		t.Fatal("confirmation refused")
	}
	if res := enroll(testPlatformToken); res.Status != http.StatusConflict || res.errorCode() != protocol.CodeAlreadyEnrolled {
		t.Fatalf("enroll with the retired token = %d %s, want 409 already_enrolled", res.Status, res.Body)
	}
	// Enrolling again keeps the rotation: the old token is still refused.
	if res := enroll(newToken1); res.Status != http.StatusOK {
		t.Fatalf("enroll with the token in force = %d %s", res.Status, res.Body)
	}
	if ra.getStateAs(testPlatformToken) != http.StatusUnauthorized || ra.getStateAs(newToken1) != http.StatusOK {
		t.Fatal("enrolling again changed the keys")
	}
}
