package app

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// The web mode's wire contract, used by frontend/src/api/transport.ts.
const (
	// SessionHeader carries the session token on every /rpc request.
	SessionHeader = "X-Mooxsync-Session"
	// SessionParam carries the session token in the query of /events and of the URL that
	// opens the app.
	SessionParam = "session"
	// rpcPrefix is followed by "<Service>.<Method>".
	rpcPrefix = "/rpc/"
	// eventsPath serves Server-Sent Events: `data: {"name":"…","data":…}`.
	eventsPath = "/events"
)

// Limits of the web mode.
const (
	maxRPCBody = 8 << 20
	// sseBuffer is how many events a slow event stream may lag behind before it is closed
	// (the browser's EventSource then reconnects).
	sseBuffer    = 256
	sseKeepAlive = 15 * time.Second
)

// contentSecurityPolicy confines the served frontend to its own origin. Naive UI injects
// its styles at run time, hence 'unsafe-inline' for styles (never for scripts).
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// NewSessionToken returns a new web session token: 32 random bytes, base64url.
func NewSessionToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// CheckListenAddr refuses a web mode listen address that is not on loopback, unless
// allowRemote: the session token travels in clear over plain HTTP. "localhost" counts as
// loopback; an empty host (every interface) does not.
func CheckListenAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: want HOST:PORT, e.g. 127.0.0.1:0", addr)
	}
	if allowRemote || isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("--listen %q is not a loopback address: web mode serves plain HTTP with the session "+
		"token in the URL, so it listens on 127.0.0.1 unless --allow-remote is given as well "+
		"(prefer an SSH tunnel: ssh -L 8080:127.0.0.1:8080 server)", addr)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// WebOptions configure the web mode server.
type WebOptions struct {
	// Addr is the address the server listens on, with its real port (after listening on
	// port 0). Requests must name it as their Host, or localhost:PORT for a loopback
	// address, so that a page of another site whose name resolves to 127.0.0.1 (DNS
	// rebinding) is refused.
	Addr string
	// AllowedHosts are further Host values accepted (HOST:PORT), for --allow-remote.
	AllowedHosts []string
	// Session is the token every /rpc and /events request must carry.
	Session string
	// Assets is the built frontend, index.html at its root.
	Assets fs.FS
	// Events is the broadcaster the App emits to (Options.Emitter).
	Events *Broadcaster
	// Logger receives request failures; nil discards them.
	Logger *slog.Logger
}

// WebServer serves the frontend and the App's bound services over HTTP:
//
//	POST /rpc/<Service>.<Method>   body: JSON array of the arguments; header X-Mooxsync-Session.
//	                               200 with the JSON result (null for none), or an error status
//	                               with {"code","message","field"?}.
//	GET  /events?session=TOKEN     Server-Sent Events, each `data: {"name":"…","data":…}`.
//	GET  /…                        the frontend's static files (no token needed).
//
// Every request must name the listen address as its Host (else 403); /rpc and /events
// need the session token (else 401).
type WebServer struct {
	rpc     rpcRegistry
	hosts   map[string]bool
	session []byte
	assets  fs.FS
	events  *Broadcaster
	log     *slog.Logger
}

var _ http.Handler = (*WebServer)(nil)

// NewWebServer builds the web mode server of an App.
func NewWebServer(a *App, opts WebOptions) (*WebServer, error) {
	if len(opts.Session) < 32 {
		return nil, errors.New("web server: the session token is missing or too short")
	}
	reg, err := newRPCRegistry(a.Bindings())
	if err != nil {
		return nil, err
	}
	hosts, err := allowedHosts(opts.Addr, opts.AllowedHosts)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	events := opts.Events
	if events == nil {
		events = NewBroadcaster()
	}
	return &WebServer{rpc: reg, hosts: hosts, session: []byte(opts.Session), assets: opts.Assets, events: events, log: log}, nil
}

// allowedHosts returns the Host header values accepted for a listen address.
func allowedHosts(addr string, extra []string) (map[string]bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return nil, fmt.Errorf("web server: listen address %q: want HOST:PORT with the real port", addr)
	}
	hosts := map[string]bool{strings.ToLower(net.JoinHostPort(host, port)): true}
	if isLoopbackHost(host) {
		hosts[net.JoinHostPort("localhost", port)] = true
		hosts[net.JoinHostPort("127.0.0.1", port)] = true
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			hosts[net.JoinHostPort("::1", port)] = true
		}
	}
	for _, h := range extra {
		hosts[strings.ToLower(h)] = true
	}
	return hosts, nil
}

// ServeHTTP routes a request after checking its Host.
func (s *WebServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	if !s.hosts[strings.ToLower(r.Host)] {
		writeError(w, newError(CodeForbidden, "this server answers only requests for its own address"))
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, rpcPrefix):
		if !s.authorized(r.Header.Get(SessionHeader)) {
			writeError(w, newError(CodeUnauthorized, "missing or wrong session token: open the URL web mode printed"))
			return
		}
		s.serveRPC(w, r)
	case r.URL.Path == eventsPath:
		if !s.authorized(r.URL.Query().Get(SessionParam)) {
			writeError(w, newError(CodeUnauthorized, "missing or wrong session token: open the URL web mode printed"))
			return
		}
		s.events.serve(w, r)
	default:
		s.serveStatic(w, r)
	}
}

func (s *WebServer) authorized(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), s.session) == 1
}

func (s *WebServer) serveRPC(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeErrorStatus(w, http.StatusMethodNotAllowed, newError(CodeBadRequest, "use POST"))
		return
	}
	name := strings.TrimPrefix(r.URL.Path, rpcPrefix)
	m, ok := s.rpc[name]
	if !ok {
		writeError(w, newError(CodeNotBound, fmt.Sprintf("%s is not a method of the control center", name)))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRPCBody))
	if err != nil {
		writeErrorStatus(w, http.StatusRequestEntityTooLarge, newError(CodeBadRequest, "the request body is too large"))
		return
	}
	result, err := m.call(name, body)
	if err != nil {
		writeError(w, toError(s.log, name, err))
		return
	}
	b, err := json.Marshal(result)
	if err != nil {
		writeError(w, toError(s.log, name, fmt.Errorf("encode result: %w", err)))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// writeError answers an error with the status of its code and its JSON.
func writeError(w http.ResponseWriter, e *Error) { writeErrorStatus(w, httpStatus(e.Code), e) }

func writeErrorStatus(w http.ResponseWriter, status int, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, e.Error())
}

// notBuilt is served when the binary embeds no built frontend.
const notBuilt = `<!doctype html><meta charset="utf-8"><title>mooxsync</title>
<p>The frontend is not built into this binary: run <code>make frontend</code>, then build web mode again.</p>`

// serveStatic serves the frontend's files; a path that names no file gets index.html, so
// the app's routes survive a reload.
func (s *WebServer) serveStatic(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	if s.assets != nil {
		if fi, err := fs.Stat(s.assets, name); err == nil && !fi.IsDir() {
			http.ServeFileFS(w, r, s.assets, name)
			return
		}
		if path.Ext(name) == "" {
			if _, err := fs.Stat(s.assets, "index.html"); err == nil {
				http.ServeFileFS(w, r, s.assets, "index.html")
				return
			}
		} else {
			http.NotFound(w, r)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, notBuilt)
}

// Broadcaster is the web mode's Emitter: it sends every event to every open event stream
// (GET /events) as Server-Sent Events.
type Broadcaster struct {
	mu      sync.Mutex
	clients map[chan []byte]struct{}
	closed  bool
}

var _ Emitter = (*Broadcaster)(nil)

// NewBroadcaster returns a broadcaster without clients.
func NewBroadcaster() *Broadcaster { return &Broadcaster{clients: map[chan []byte]struct{}{}} }

// sseMessage is the data of one Server-Sent Event.
type sseMessage struct {
	Name string `json:"name"`
	Data any    `json:"data"`
}

// Emit sends an event to every stream without waiting: a stream too far behind is closed.
func (b *Broadcaster) Emit(name string, data any) {
	msg, err := json.Marshal(sseMessage{Name: name, Data: data})
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.clients {
		select {
		case c <- msg:
		default:
			delete(b.clients, c)
			close(c)
		}
	}
}

// Close ends every stream and refuses new ones, so that the server can shut down.
func (b *Broadcaster) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for c := range b.clients {
		delete(b.clients, c)
		close(c)
	}
}

func (b *Broadcaster) subscribe() (chan []byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false
	}
	c := make(chan []byte, sseBuffer)
	b.clients[c] = struct{}{}
	return c, true
}

func (b *Broadcaster) unsubscribe(c chan []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.clients[c]; ok {
		delete(b.clients, c)
		close(c)
	}
}

// serve streams events to one client until it goes away or the broadcaster closes.
func (b *Broadcaster) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeErrorStatus(w, http.StatusMethodNotAllowed, newError(CodeBadRequest, "use GET"))
		return
	}
	rc := http.NewResponseController(w)
	c, ok := b.subscribe()
	if !ok {
		writeErrorStatus(w, http.StatusServiceUnavailable, newError(CodeCanceled, "the server is shutting down"))
		return
	}
	defer b.unsubscribe(c)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// A comment opens the stream at once, so the client sees it connected.
	if _, err := io.WriteString(w, ": connected\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	ping := time.NewTicker(sseKeepAlive)
	defer ping.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case msg, ok := <-c:
			if !ok {
				return
			}
			_, err = fmt.Fprintf(w, "data: %s\n\n", msg)
		case <-ping.C:
			_, err = io.WriteString(w, ": ping\n\n")
		}
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}
