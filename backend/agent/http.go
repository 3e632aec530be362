package agent

import (
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// handlerFunc is an endpoint: it writes its success answer itself and returns an error to
// be answered with the protocol's error envelope.
type handlerFunc func(w http.ResponseWriter, r *http.Request, body []byte) error

// methods maps HTTP methods to the handler of one path.
type methods map[string]http.HandlerFunc

func (a *Agent) routes(mux *http.ServeMux) {
	handle := func(pattern string, m methods) {
		allowed := make([]string, 0, len(m))
		for k := range m {
			allowed = append(allowed, k)
		}
		sort.Strings(allowed)
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			h, ok := m[r.Method]
			if !ok {
				w.Header().Set("Allow", strings.Join(allowed, ", "))
				protocol.WriteError(w, protocol.Errorf(protocol.CodeBadRequest, "method %s is not allowed here", r.Method).
					WithStatus(http.StatusMethodNotAllowed))
				return
			}
			h(w, r)
		})
	}
	handle("/api/health", methods{http.MethodGet: a.health})
	handle("/api/enroll", methods{http.MethodPost: a.serve(a.enroll)})
	handle("/api/state", methods{http.MethodGet: a.control(a.getState), http.MethodPut: a.control(a.putState)})
	handle("/api/status", methods{http.MethodGet: a.control(a.status)})
	handle("/api/models", methods{http.MethodGet: a.control(a.models)})
	entityRoutes(a, handle, "/api/platforms", a.platformEntity())
	entityRoutes(a, handle, "/api/syncs", a.syncEntity())
	handle("/api/platform/{id}/sync", methods{http.MethodGet: a.control(a.platformSyncs)})
	handle("/api/syncs/{id}/dead-letters", methods{http.MethodGet: a.control(a.deadLetters)})
	handle("/api/syncs/{id}/dead-letters/retry", methods{http.MethodPost: a.control(a.retryDeadLetters)})
	handle("/api/token", methods{http.MethodPost: a.control(a.rotateToken)})
	handle("/api/relations/{model}/{key}", methods{http.MethodGet: a.control(a.getRelations),
		http.MethodPut: a.control(a.putRelations)})
	handle("/api/syncs/{id}/reconcile", methods{http.MethodGet: a.control(a.reconcileRuns),
		http.MethodPost: a.control(a.startReconcile)})
	handle(a.opts.WebhookPath, methods{http.MethodPost: a.serve(a.webhook)})
	handle(strings.TrimRight(a.opts.WebhookPath, "/")+"/reconcile/{endpoint}", methods{http.MethodPost: a.serve(a.reconcileData)})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		protocol.WriteError(w, protocol.Errorf(protocol.CodeNotFound, "no such endpoint"))
	})
}

// entityRoutes routes the Moox entity API of one kind of item: index and store on path,
// show, update and destroy on path/{id}.
func entityRoutes[T any](a *Agent, handle func(string, methods), path string, e *entity[T]) {
	handle(path, methods{http.MethodGet: a.control(e.index(a)), http.MethodPost: a.control(e.store(a))})
	handle(path+"/{id}", methods{
		http.MethodGet:    a.control(e.show(a)),
		http.MethodPut:    a.control(e.update(a)),
		http.MethodDelete: a.control(e.destroy(a)),
	})
}

// serve reads the body within the limits and runs h, answering its error. The body's
// share of the memory budget is held until h returns.
func (a *Agent) serve(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, release, err := a.readBodyOrClose(w, r)
		defer release()
		if err == nil {
			err = h(w, r, body)
		}
		if err != nil {
			a.writeError(w, r, err)
		}
	}
}

// control is serve for the control plane: the agent must be enrolled, the request must be
// signed with K_ctl(self) over its method and request URI (during a token rotation, with
// the K_ctl of the new or the previous token), and its id must be fresh. The first request
// verified with the new key of a pending rotation confirms it.
func (a *Agent) control(h handlerFunc) http.HandlerFunc {
	return a.serve(func(w http.ResponseWriter, r *http.Request, body []byte) error {
		e := a.enrolled()
		if e == nil {
			return protocol.Errorf(protocol.CodeNotEnrolled, "this agent is not enrolled yet")
		}
		newest, err := a.verifyControlRequest(r, body, e)
		if err != nil {
			return err
		}
		if err := a.rememberID(r); err != nil {
			return err
		}
		if newest && e.RotationPending() {
			if err := a.confirmRotation(r.Context(), e.PlatformToken); err != nil {
				return err
			}
		}
		return h(w, r, body)
	})
}

// verifyControl checks a control-plane signature with key, then that its id is fresh.
func (a *Agent) verifyControl(r *http.Request, body, key []byte) error {
	h := protocol.HeadersFrom(r.Header)
	if err := a.verifier.VerifyControl(h, r.Method, r.RequestURI, body, key); err != nil {
		return err
	}
	return a.rememberID(r)
}

// rememberID records the id of a verified control-plane request, refusing one seen within
// the replay window with 409 replayed.
func (a *Agent) rememberID(r *http.Request) error {
	id := r.Header.Get(protocol.HeaderID)
	seen, err := a.store.Remember(r.Context(), id, a.opts.Now())
	if err != nil {
		return err
	}
	if seen {
		return protocol.Errorf(protocol.CodeReplayed, "message id %s was already used", id)
	}
	return nil
}

// smallBody is the size up to which a body is read without a share of the memory budget:
// control requests and small deliveries are never turned away for want of memory.
const smallBody = 64 << 10

// minBodyBuffer is the first buffer of a body of unknown length; it doubles as it fills.
const minBodyBuffer = 512

// busyRetryAfter is the Retry-After, in seconds, of a request turned away because large
// bodies hold the whole memory budget.
const busyRetryAfter = "1"

// bodyBudget bounds the bytes held by large request bodies at once (Options.BodyMemory),
// so that many bodies at the size limit cannot exhaust the agent's memory.
type bodyBudget struct {
	mu   sync.Mutex
	used int64
	max  int64
}

// take reserves n bytes, or reports false when they would exceed the budget.
func (b *bodyBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

// give returns n reserved bytes.
func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// inFlight is the number of bytes reserved.
func (b *bodyBudget) inFlight() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// readBody reads the request body, refusing one over the limit with 413 too_large. A body
// over smallBody reserves its buffer's size from the memory budget before the buffer is
// allocated (all of a declared Content-Length at once, a chunked body as it grows); when the
// budget is exhausted the request is refused with 503 and Retry-After. The returned release
// gives the reservation back; it must be called, also after an error.
func (a *Agent) readBody(w http.ResponseWriter, r *http.Request) ([]byte, func(), error) {
	limit := a.opts.BodyLimit
	var reserved int64
	release := func() {
		if reserved > 0 {
			a.bodies.give(reserved)
			reserved = 0
		}
	}
	tooLarge := protocol.Errorf(protocol.CodeTooLarge, "request body is over the limit of %d bytes", limit)
	if r.ContentLength > limit {
		return nil, release, tooLarge
	}
	// grow reserves what a buffer of size total needs beyond the reservation held.
	grow := func(total int64) error {
		if total <= smallBody || total <= reserved {
			return nil
		}
		if !a.bodies.take(total - reserved) {
			w.Header().Set("Retry-After", busyRetryAfter)
			return protocol.Errorf(protocol.CodeInternal,
				"the agent is busy reading other large request bodies; retry later").
				WithStatus(http.StatusServiceUnavailable)
		}
		reserved = total
		return nil
	}
	size := int64(minBodyBuffer)
	if r.ContentLength >= 0 {
		size = r.ContentLength
	}
	if err := grow(size); err != nil {
		return nil, release, err
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	buf := make([]byte, 0, size)
	var probe [1]byte
	for {
		if len(buf) == cap(buf) {
			// Full: one byte more tells the end of the body from a need to grow.
			n, err := body.Read(probe[:])
			if n == 0 && err == nil {
				continue
			}
			if n == 0 {
				return finishBody(buf, err, tooLarge, release)
			}
			next := min(max(2*int64(cap(buf)), minBodyBuffer), limit)
			if next <= int64(cap(buf)) {
				return nil, release, tooLarge
			}
			if err := grow(next); err != nil {
				return nil, release, err
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = append(grown, probe[0])
			if err != nil {
				return finishBody(buf, err, tooLarge, release)
			}
			continue
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return finishBody(buf, err, tooLarge, release)
		}
	}
}

// finishBody ends readBody at the read error err: io.EOF is the end of the body.
func finishBody(buf []byte, err, tooLarge error, release func()) ([]byte, func(), error) {
	if errors.Is(err, io.EOF) {
		return buf, release, nil
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, release, tooLarge
	}
	return nil, release, protocol.Errorf(protocol.CodeBadRequest, "read request body: %s", err)
}

// readBodyOrClose is readBody; when the body was not read to its end, the answer closes the
// connection rather than reading and discarding what is left of it.
func (a *Agent) readBodyOrClose(w http.ResponseWriter, r *http.Request) ([]byte, func(), error) {
	body, release, err := a.readBody(w, r)
	if err != nil {
		w.Header().Set("Connection", "close")
	}
	return body, release, err
}

// writeError answers err; internal errors are logged with their cause, which the client
// never sees.
func (a *Agent) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := protocol.AsError(err)
	if e.Code == protocol.CodeInternal && e.Status != http.StatusServiceUnavailable {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		a.log.Warn("request refused", "method", r.Method, "path", r.URL.Path, "code", string(e.Code),
			"status", e.Status, "reason", e.Message, "remote", r.RemoteAddr)
	}
	protocol.WriteError(w, e)
}

// pathID parses the {id} path value; anything but a positive integer is not found.
func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, protocol.Errorf(protocol.CodeNotFound, "no such id %q", r.PathValue("id"))
	}
	return id, nil
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs every request at debug level.
func (a *Agent) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		a.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration_ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr)
	})
}
