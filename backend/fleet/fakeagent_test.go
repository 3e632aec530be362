package fleet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// fakeAgent is an agent that implements the control plane of PROTOCOL.md in memory and
// verifies every signature with protocol.Verifier, including the token rotation contract
// of POST /api/token. Tests inject failures through its fields.
type fakeAgent struct {
	tb        testing.TB
	syncToken string
	server    *httptest.Server
	seen      *protocol.MemorySeenStore

	// inFlight, when set, counts requests being served across several fakes.
	inFlight *inFlight
	// delay is added to every request.
	delay time.Duration
	// unavailable answers that many signed requests, after verifying them, with 503.
	unavailable atomic.Int32

	mu sync.Mutex
	// enrolled platform and its token; pendingToken is a rotated token not yet confirmed.
	platform     *protocol.Platform
	token        string
	pendingToken string
	state        *protocol.State
	puts         int
	// failPut, when set, answers every PUT /api/state with this error.
	failPut *protocol.Error
	// refuseRotation answers POST /api/token with 400 bad_request.
	refuseRotation bool
	// failConfirm makes requests signed with the pending key fail with 503 (the rotation
	// cannot be confirmed) without being taken as confirmation.
	failConfirm bool
	// requests lists every request received, with whether its signature verified.
	requests []fakeRequest
}

type fakeRequest struct {
	Method     string
	RequestURI string
	ID         string
	Verified   bool
}

// inFlight counts concurrent requests and remembers the peak.
type inFlight struct {
	cur, peak atomic.Int64
}

func (f *inFlight) enter() {
	n := f.cur.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (f *inFlight) leave() { f.cur.Add(-1) }

// newFakeAgent starts a fake agent over TLS (tlsServer) or plain HTTP.
func newFakeAgent(tb testing.TB, syncToken string, tlsServer bool) *fakeAgent {
	tb.Helper()
	a := &fakeAgent{tb: tb, syncToken: syncToken, seen: protocol.NewMemorySeenStore()}
	a.server = httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	a.server.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsServer {
		a.server.TLS = &tls.Config{Certificates: []tls.Certificate{selfSignedCert(tb)}}
		a.server.StartTLS()
	} else {
		a.server.Start()
	}
	tb.Cleanup(a.server.Close)
	return a
}

// selfSignedCert returns a new self-signed certificate for the loopback addresses, as an
// agent generates on first start: every call gives another fingerprint.
func selfSignedCert(tb testing.TB) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "mooxsync fake agent"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// URL is the agent's base URL.
func (a *fakeAgent) URL() string { return a.server.URL }

// Fingerprint is the fingerprint of the certificate the agent serves, "" over plain HTTP.
func (a *fakeAgent) Fingerprint() string {
	if a.server.Certificate() == nil || a.server.TLS == nil {
		return ""
	}
	return protocol.Fingerprint(a.server.Certificate().Raw)
}

// set changes the agent's fields under its lock.
func (a *fakeAgent) set(fn func(a *fakeAgent)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(a)
}

// putCount is how many PUT /api/state the agent accepted.
func (a *fakeAgent) putCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.puts
}

// enroll makes the agent enrolled as platform p with token, as if POST /api/enroll had run.
func (a *fakeAgent) enroll(p protocol.Platform, token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.platform, a.token = &p, token
}

func (a *fakeAgent) snapshot() (state *protocol.State, token, pending string, requests []fakeRequest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state, a.token, a.pendingToken, append([]fakeRequest(nil), a.requests...)
}

func (a *fakeAgent) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	counter, delay := a.inFlight, a.delay
	a.mu.Unlock()
	if counter != nil {
		counter.enter()
		defer counter.leave()
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		protocol.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, "read body"))
		return
	}
	if err := a.route(w, r, body); err != nil {
		protocol.WriteError(w, err)
	}
}

func (a *fakeAgent) route(w http.ResponseWriter, r *http.Request, body []byte) error {
	path := r.URL.Path
	if r.Method == http.MethodGet && path == "/api/health" {
		a.record(r, true)
		a.mu.Lock()
		h := protocol.Health{Status: "ok", Version: "fake", Enrolled: a.platform != nil}
		if a.platform != nil {
			id := a.platform.ID
			h.PlatformID = &id
		}
		a.mu.Unlock()
		protocol.WriteJSON(w, http.StatusOK, h)
		return nil
	}
	if r.Method == http.MethodPost && path == "/api/enroll" {
		if err := a.verify(r, body, protocol.BootKey(a.syncToken)); err != nil {
			return err
		}
		return a.enrollHandler(w, body)
	}
	if err := a.verifyControl(r, body); err != nil {
		return err
	}
	if a.unavailable.Add(-1) >= 0 {
		return protocol.Errorf(protocol.CodeInternal, "unavailable").WithStatus(http.StatusServiceUnavailable)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case path == "/api/state" && r.Method == http.MethodPut:
		if a.failPut != nil {
			return a.failPut
		}
		var st protocol.State
		if err := protocol.DecodeStrict(body, &st); err != nil {
			return err
		}
		if st.Platform.ID != a.platform.ID {
			return protocol.Errorf(protocol.CodeBadRequest, "state for another platform")
		}
		if a.state != nil && st.Revision < a.state.Revision {
			return protocol.Errorf(protocol.CodeConflict, "revision %d is older than %d", st.Revision, a.state.Revision)
		}
		a.state = &st
		a.puts++
		protocol.WriteJSON(w, http.StatusOK, st.Redacted())
	case path == "/api/state" && r.Method == http.MethodGet:
		st := protocol.State{Platforms: []protocol.Platform{}, Syncs: []protocol.Sync{}, Peers: []protocol.Peer{}}
		if a.state != nil {
			st = a.state.Redacted()
		}
		protocol.WriteJSON(w, http.StatusOK, st)
	case path == "/api/status" && r.Method == http.MethodGet:
		st := protocol.Status{PlatformID: a.platform.ID, Version: "fake", Syncs: []protocol.SyncStatus{}}
		if a.state != nil {
			st.Revision = a.state.Revision
			for _, s := range a.state.Syncs {
				st.Syncs = append(st.Syncs, protocol.SyncStatus{ID: s.ID, Role: "source", Status: s.Status})
			}
		}
		protocol.WriteJSON(w, http.StatusOK, st)
	case path == "/api/models" && r.Method == http.MethodGet:
		protocol.WriteJSON(w, http.StatusOK, protocol.ModelsResponse{Models: []protocol.Model{{
			Name:    "posts",
			Columns: []protocol.Column{{Name: "id", Type: "INTEGER", PrimaryKey: true}},
			Unique:  [][]string{{"ulid"}},
		}}, Transformers: []string{"declarative"}})
	case path == "/api/platforms" && r.Method == http.MethodGet:
		out := []protocol.Platform{}
		if a.state != nil {
			out = a.state.Platforms
		}
		protocol.WriteJSON(w, http.StatusOK, out)
	case strings.HasPrefix(path, "/api/syncs/") && strings.HasSuffix(path, "/reconcile") && r.Method == http.MethodPost:
		protocol.WriteJSON(w, http.StatusAccepted, protocol.ReconcileStarted{RunID: "run-1"})
	case strings.HasPrefix(path, "/api/syncs/") && r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(path, "/api/relations/"):
		if r.Method == http.MethodPut {
			var rel protocol.Relations
			if err := protocol.DecodeStrict(body, &rel); err != nil {
				return err
			}
			protocol.WriteJSON(w, http.StatusOK, rel)
			return nil
		}
		protocol.WriteJSON(w, http.StatusOK, protocol.Relations{PlatformIDs: []int64{2, 3}})
	case path == "/api/token" && r.Method == http.MethodPost:
		var req struct {
			PlatformToken string `json:"platform_token"`
		}
		if err := protocol.DecodeStrict(body, &req); err != nil {
			return err
		}
		if a.refuseRotation {
			return protocol.Errorf(protocol.CodeBadRequest, "rotation refused")
		}
		if err := protocol.CheckToken(req.PlatformToken); err != nil {
			return protocol.Errorf(protocol.CodeBadRequest, "platform_token too short")
		}
		a.pendingToken = req.PlatformToken
		protocol.WriteJSON(w, http.StatusOK, map[string]string{"status": "rotated"})
	default:
		return protocol.Errorf(protocol.CodeNotFound, "no such endpoint")
	}
	return nil
}

func (a *fakeAgent) enrollHandler(w http.ResponseWriter, body []byte) error {
	var req protocol.EnrollRequest
	if err := protocol.DecodeStrict(body, &req); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.platform != nil && (a.platform.ID != req.Platform.ID ||
		subtle.ConstantTimeCompare([]byte(a.token), []byte(req.PlatformToken)) != 1) {
		return protocol.Errorf(protocol.CodeAlreadyEnrolled, "already enrolled")
	}
	p := req.Platform
	a.platform, a.token = &p, req.PlatformToken
	protocol.WriteJSON(w, http.StatusOK, protocol.EnrollResponse{PlatformID: p.ID, AgentVersion: "fake", TLSFingerprint: a.Fingerprint()})
	return nil
}

// verifyControl checks a control-plane request against K_ctl of the token in force and,
// while a rotation is pending, of the new token; a valid request signed with the new key
// confirms the rotation, after which the old key is refused.
func (a *fakeAgent) verifyControl(r *http.Request, body []byte) error {
	a.mu.Lock()
	if a.platform == nil {
		a.mu.Unlock()
		a.record(r, false)
		return protocol.Errorf(protocol.CodeNotEnrolled, "not enrolled")
	}
	token, pending, failConfirm := a.token, a.pendingToken, a.failConfirm
	a.mu.Unlock()
	h := protocol.HeadersFrom(r.Header)
	v := protocol.Verifier{}
	if pending != "" {
		if err := v.VerifyControl(h, r.Method, r.RequestURI, body, protocol.ControlKey(pending, a.syncToken)); err == nil {
			a.record(r, true)
			if failConfirm {
				return protocol.Errorf(protocol.CodeInternal, "unavailable").WithStatus(http.StatusServiceUnavailable)
			}
			if err := a.remember(h.ID); err != nil {
				return err
			}
			a.mu.Lock()
			a.token, a.pendingToken = pending, ""
			a.mu.Unlock()
			return nil
		}
	}
	return a.verify(r, body, protocol.ControlKey(token, a.syncToken))
}

func (a *fakeAgent) verify(r *http.Request, body, key []byte) error {
	h := protocol.HeadersFrom(r.Header)
	if err := (protocol.Verifier{}).VerifyControl(h, r.Method, r.RequestURI, body, key); err != nil {
		a.record(r, false)
		return err
	}
	a.record(r, true)
	return a.remember(h.ID)
}

func (a *fakeAgent) remember(id string) error {
	seen, err := a.seen.Remember(a.tb.Context(), id, time.Now())
	if err != nil {
		return err
	}
	if seen {
		return protocol.Errorf(protocol.CodeReplayed, "replayed")
	}
	return nil
}

func (a *fakeAgent) record(r *http.Request, verified bool) {
	a.mu.Lock()
	a.requests = append(a.requests, fakeRequest{
		Method: r.Method, RequestURI: r.RequestURI, ID: r.Header.Get(protocol.HeaderID), Verified: verified,
	})
	a.mu.Unlock()
}

// mustJSON marshals v or fails the test.
func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
