package app

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // SQLite driver for the agents' application databases.

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/agent/appdb"
	"github.com/mooxsync/mooxsync/backend/agent/state"
	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// recorder is an Emitter that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []event
	notify chan struct{}
}

type event struct {
	name string
	data any
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) Emit(name string, data any) {
	r.mu.Lock()
	r.events = append(r.events, event{name, data})
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// named returns the data of every event with the name, in order.
func (r *recorder) named(name string) []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []any
	for _, e := range r.events {
		if e.name == name {
			out = append(out, e.data)
		}
	}
	return out
}

// waitFor waits until an event with the name has been emitted and returns the last one.
func (r *recorder) waitFor(tb testing.TB, name string) any {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if evs := r.named(name); len(evs) > 0 {
			return evs[len(evs)-1]
		}
		select {
		case <-r.notify:
		case <-deadline:
			tb.Fatalf("no %s event", name)
		}
	}
}

// testApp is an App over a temporary catalog, an in-memory secret store and a recorder.
type testApp struct {
	*App
	dir     string
	secrets *secrets.Memory
	events  *recorder
}

// mustOpenApp builds an App for a test; the poller is off unless opts turn it on. The
// App shuts down when the test ends.
func mustOpenApp(tb testing.TB, opts ...func(*Options)) *testApp {
	tb.Helper()
	dir := tb.TempDir()
	ta := &testApp{dir: dir, secrets: secrets.NewMemory(), events: newRecorder()}
	o := Options{
		CatalogPath:     filepath.Join(dir, "catalog.db"),
		SettingsPath:    filepath.Join(dir, "settings.json"),
		Secrets:         ta.secrets,
		Emitter:         ta.events,
		Logger:          slog.New(slog.DiscardHandler),
		LogLevel:        new(slog.LevelVar),
		Client:          fleet.ClientOptions{RetryWait: time.Millisecond, Timeout: 10 * time.Second},
		TrustOnFirstUse: true,
		PollInterval:    -1,
	}
	for _, f := range opts {
		f(&o)
	}
	a, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	ta.App = a
	a.Startup(context.Background())
	tb.Cleanup(func() { a.Shutdown(context.Background()) })
	return ta
}

// mustSyncToken generates the fleet's sync token and returns it.
func (ta *testApp) mustSyncToken(tb testing.TB) string {
	tb.Helper()
	if err := ta.Settings.GenerateSyncToken(); err != nil {
		tb.Fatal(err)
	}
	t, err := ta.secrets.Get(context.Background(), secrets.SyncTokenKey)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// mustPlatform creates a platform with the agent URL.
func (ta *testApp) mustPlatform(tb testing.TB, name, agentURL string) Platform {
	tb.Helper()
	p, err := ta.Platforms.Save(PlatformInput{Name: name, Domain: strings.ToLower(name) + ".example", AgentURL: agentURL, ShowInMenu: true})
	if err != nil {
		tb.Fatalf("create platform %s: %v", name, err)
	}
	return p
}

// Application databases of the test agents.
const (
	shopDDL = `CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, ulid TEXT UNIQUE, title VARCHAR(255), body TEXT,
		views INTEGER, published_at DATETIME)`
	blogDDL = `CREATE TABLE articles (id INTEGER PRIMARY KEY AUTOINCREMENT, ulid TEXT UNIQUE, title TEXT,
		views REAL, published_at TIMESTAMP, author TEXT)`
)

// mustShopAndBlog generates the sync token, starts two real agents (posts on Shop,
// articles on Blog) and creates their platforms.
func (ta *testApp) mustShopAndBlog(tb testing.TB) (shop, blog Platform, shopAgent *testAgent) {
	tb.Helper()
	syncToken := ta.mustSyncToken(tb)
	shopAgent = startAgent(tb, syncToken, shopDDL)
	blogAgent := startAgent(tb, syncToken, blogDDL)
	return ta.mustPlatform(tb, "Shop", shopAgent.URL), ta.mustPlatform(tb, "Blog", blogAgent.URL), shopAgent
}

// testAgent is a real agent (package agent) over a real state store and a real SQLite
// application database, served over TLS with its own certificate on loopback.
type testAgent struct {
	URL         string
	Fingerprint string
	App         *sql.DB
	agent       *agent.Agent
	srv         *httptest.Server
}

// startAgent starts a real agent whose application database is created by ddl.
func startAgent(tb testing.TB, syncToken, ddl string) *testAgent {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	appPath := filepath.Join(dir, "app.db")
	app, err := sql.Open("sqlite3", appPath)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = app.Close() })
	if _, err := app.Exec(ddl); err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile := agent.CertPaths(dir)
	if err := agent.GenerateCertificate(certFile, keyFile, []string{"127.0.0.1", "localhost"}, time.Now()); err != nil {
		tb.Fatal(err)
	}
	cert, fp, err := agent.LoadCertificate(certFile, keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	store, err := state.Open(ctx, filepath.Join(dir, "state"))
	if err != nil {
		tb.Fatal(err)
	}
	db, err := appdb.Open(ctx, "sqlite:"+appPath, appdb.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	ag, err := agent.New(ctx, agent.Options{SyncToken: syncToken, Store: store, Applier: db, Models: db, Relations: db,
		TLSFingerprint: fp})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(ag.Handler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	ag.Start()
	ta := &testAgent{URL: srv.URL, Fingerprint: fp, App: app, agent: ag, srv: srv}
	tb.Cleanup(func() {
		srv.Close()
		ag.Stop()
		_ = db.Close()
		_ = store.Close()
	})
	return ta
}

// fakeAgent is an agent's control plane reduced to what a test needs: it verifies every
// signed request with K_ctl of its platform, records the request URIs, and answers with
// handle.
type fakeAgent struct {
	srv *httptest.Server

	mu       sync.Mutex
	uris     []string
	verified []bool
}

func startFakeAgent(tb testing.TB, platformToken, syncToken string, handle func(w http.ResponseWriter, r *http.Request)) *fakeAgent {
	tb.Helper()
	fa := &fakeAgent{}
	key := protocol.ControlKey(platformToken, syncToken)
	fa.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := protocol.Verifier{}.VerifyControl(protocol.HeadersFrom(r.Header), r.Method, r.URL.RequestURI(), body, key)
		fa.mu.Lock()
		fa.uris = append(fa.uris, r.Method+" "+r.URL.RequestURI())
		fa.verified = append(fa.verified, err == nil)
		fa.mu.Unlock()
		if err != nil {
			protocol.WriteError(w, protocol.Errorf(protocol.CodeUnauthorized, "bad signature"))
			return
		}
		handle(w, r)
	}))
	tb.Cleanup(fa.srv.Close)
	return fa
}

func (fa *fakeAgent) requests() (uris []string, verified []bool) {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	return append([]string(nil), fa.uris...), append([]bool(nil), fa.verified...)
}

// appErr asserts that err is an *Error with the code (and field, when not "") and
// returns it.
func appErr(tb testing.TB, err error, code, field string) *Error {
	tb.Helper()
	var e *Error
	if !errors.As(err, &e) {
		tb.Fatalf("err = %v (%T), want an *Error with code %s", err, err, code)
	}
	if e.Code != code || (field != "" && e.Field != field) {
		tb.Fatalf("err = %s, want code %s field %q", e, code, field)
	}
	// The error text the frontend parses is JSON of the same fields.
	var back Error
	if jerr := json.Unmarshal([]byte(err.Error()), &back); jerr != nil || back != *e {
		tb.Fatalf("Error() = %s is not the JSON of the error", err.Error())
	}
	return e
}

// unavailableSecrets is a secret store whose keyring is missing.
type unavailableSecrets struct{}

var errNoKeyring = fmt.Errorf("%w: install and start gnome-keyring (package gnome-keyring)", secrets.ErrUnavailable)

func (unavailableSecrets) Get(context.Context, string) (string, error) { return "", errNoKeyring }
func (unavailableSecrets) Set(context.Context, string, string) error   { return errNoKeyring }
func (unavailableSecrets) Delete(context.Context, string) error        { return errNoKeyring }
