package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// webFixture is an App served by a WebServer on a real loopback listener.
type webFixture struct {
	*testApp
	srv     *httptest.Server
	session string
	events  *Broadcaster
}

func startWeb(tb testing.TB) *webFixture {
	tb.Helper()
	events := NewBroadcaster()
	ta := mustOpenApp(tb, func(o *Options) { o.Emitter = events })
	session, err := NewSessionToken()
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	assets := fstest.MapFS{
		"index.html":     {Data: []byte("<!doctype html><title>mooxsync</title>")},
		"assets/app.js":  {Data: []byte("console.log(1)")},
		"assets/app.css": {Data: []byte("body{}")},
	}
	ws, err := NewWebServer(ta.App, WebOptions{Addr: srv.Listener.Addr().String(), Session: session, Assets: assets, Events: events})
	if err != nil {
		tb.Fatal(err)
	}
	srv.Config.Handler = ws
	srv.Start()
	tb.Cleanup(func() {
		events.Close()
		srv.Close()
	})
	return &webFixture{testApp: ta, srv: srv, session: session, events: events}
}

// rpc calls Service.Method over HTTP with the session token and returns the status and body.
func (f *webFixture) rpc(tb testing.TB, method string, args ...any) (int, []byte) {
	tb.Helper()
	if args == nil {
		args = []any{}
	}
	body, err := json.Marshal(args)
	if err != nil {
		tb.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/rpc/"+method, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set(SessionHeader, f.session)
	req.Header.Set("Content-Type", "application/json")
	return do(tb, req)
}

func do(tb testing.TB, req *http.Request) (int, []byte) {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, b
}

// errorBody decodes an error answer.
func errorBody(tb testing.TB, b []byte) Error {
	tb.Helper()
	var e Error
	if err := json.Unmarshal(b, &e); err != nil || e.Code == "" {
		tb.Fatalf("not an error body: %s", b)
	}
	return e
}

func TestWebServer_Session(t *testing.T) {
	f := startWeb(t)
	for _, tc := range []struct {
		name, token string
	}{{"no token", ""}, {"wrong token", strings.Repeat("x", 43)}, {"prefix of the token", f.session[:20]}} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/rpc/PlatformService.List", strings.NewReader("[]"))
			if tc.token != "" {
				req.Header.Set(SessionHeader, tc.token)
			}
			status, body := do(t, req)
			if status != http.StatusUnauthorized || errorBody(t, body).Code != CodeUnauthorized {
				t.Fatalf("rpc: %d %s", status, body)
			}
			req, _ = http.NewRequest(http.MethodGet, f.srv.URL+"/events?session="+tc.token, nil)
			if status, body := do(t, req); status != http.StatusUnauthorized {
				t.Fatalf("events: %d %s", status, body)
			}
		})
	}
	t.Run("token in the query does not open /rpc", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/rpc/PlatformService.List?session="+f.session, strings.NewReader("[]"))
		if status, _ := do(t, req); status != http.StatusUnauthorized {
			t.Fatalf("status %d", status)
		}
	})
	t.Run("static files need no token", func(t *testing.T) {
		for _, path := range []string{"/", "/?session=" + f.session, "/assets/app.js", "/platforms"} {
			resp, err := http.Get(f.srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" ||
				!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") ||
				resp.Header.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("GET %s: %d %v", path, resp.StatusCode, resp.Header)
			}
		}
		resp, err := http.Get(f.srv.URL + "/assets/missing.js")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("missing asset: %d", resp.StatusCode)
		}
	})
}

func TestWebServer_Host(t *testing.T) {
	f := startWeb(t)
	port := f.srv.Listener.Addr().String()[strings.LastIndexByte(f.srv.Listener.Addr().String(), ':')+1:]
	for host, want := range map[string]int{
		"127.0.0.1:" + port:        http.StatusOK,
		"localhost:" + port:        http.StatusOK,
		"LOCALHOST:" + port:        http.StatusOK,
		"evil.example:" + port:     http.StatusForbidden,
		"evil.example":             http.StatusForbidden,
		"127.0.0.1":                http.StatusForbidden,
		"127.0.0.1:1" + port:       http.StatusForbidden,
		"localhost.evil.example:1": http.StatusForbidden,
	} {
		for _, path := range []string{"/rpc/PlatformService.List", "/"} {
			method := http.MethodGet
			if strings.HasPrefix(path, "/rpc/") {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader("[]"))
			req.Host = host
			req.Header.Set(SessionHeader, f.session)
			status, body := do(t, req)
			if status != want {
				t.Errorf("Host %s %s: %d %s, want %d", host, path, status, body, want)
			}
			if want == http.StatusForbidden && errorBody(t, body).Code != CodeForbidden {
				t.Errorf("Host %s: body %s", host, body)
			}
		}
	}
}

func TestWebServer_RPC(t *testing.T) {
	f := startWeb(t)

	status, body := f.rpc(t, "PlatformService.Save", PlatformInput{Name: "Shop", Domain: "shop.example", AgentURL: "https://shop.example:7443"})
	if status != http.StatusOK {
		t.Fatalf("Save: %d %s", status, body)
	}
	var p Platform
	if err := json.Unmarshal(body, &p); err != nil || p.ID == 0 || p.Name != "Shop" {
		t.Fatalf("Save answered %s", body)
	}
	// The JSON has every field of the contract, nulls included.
	var raw map[string]any
	_ = json.Unmarshal(body, &raw)
	for _, k := range []string{"ip_address", "thumbnail", "lock_reason", "tls_fingerprint", "pending_fingerprint", "enrolled_at", "acked_revision"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("platform JSON lacks %s: %s", k, body)
		}
	}

	status, body = f.rpc(t, "PlatformService.List")
	var list []Platform
	if status != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list) != 1 || list[0].ID != p.ID {
		t.Fatalf("List: %d %s", status, body)
	}

	status, body = f.rpc(t, "PlatformService.HasToken", p.ID)
	if status != http.StatusOK || string(body) != "true" {
		t.Fatalf("HasToken: %d %s", status, body)
	}

	status, body = f.rpc(t, "SyncService.List", 0, 0)
	if status != http.StatusOK || string(body) != "[]" {
		t.Fatalf("SyncService.List: %d %s", status, body)
	}

	status, body = f.rpc(t, "SettingsService.Save", Settings{LogLevel: "warn", Theme: "light", Language: "de"})
	var s Settings
	if status != http.StatusOK || json.Unmarshal(body, &s) != nil || s.Language != "de" || s.SecretsBackend != BackendKeyring {
		t.Fatalf("SettingsService.Save: %d %s", status, body)
	}

	status, body = f.rpc(t, "PlatformService.Delete", p.ID)
	if status != http.StatusOK || string(body) != "null" {
		t.Fatalf("Delete: %d %s", status, body)
	}

	t.Run("errors", func(t *testing.T) {
		status, body := f.rpc(t, "PlatformService.Save", PlatformInput{Name: "", Domain: "x.example", AgentURL: "https://x.example"})
		if e := errorBody(t, body); status != http.StatusBadRequest || e.Code != CodeValidation || e.Field != "name" {
			t.Errorf("validation: %d %s", status, body)
		}
		status, body = f.rpc(t, "PlatformService.Delete", 4242)
		if e := errorBody(t, body); status != http.StatusNotFound || e.Code != CodeNotFound {
			t.Errorf("not found: %d %s", status, body)
		}
		status, body = f.rpc(t, "PlatformService.Nope")
		if e := errorBody(t, body); status != http.StatusNotFound || e.Code != CodeNotBound {
			t.Errorf("unknown method: %d %s", status, body)
		}
		status, body = f.rpc(t, "PlatformService.Delete")
		if e := errorBody(t, body); status != http.StatusBadRequest || e.Code != CodeBadRequest {
			t.Errorf("missing argument: %d %s", status, body)
		}
		status, body = f.rpc(t, "PlatformService.Delete", "one")
		if e := errorBody(t, body); status != http.StatusBadRequest || !strings.Contains(e.Message, "integer") {
			t.Errorf("wrong argument type: %d %s", status, body)
		}
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/rpc/PlatformService.List", nil)
		req.Header.Set(SessionHeader, f.session)
		if status, _ := do(t, req); status != http.StatusMethodNotAllowed {
			t.Errorf("GET /rpc: %d", status)
		}
	})
}

// TestWebServer_EveryMethodReachable calls every exported method of every bound service
// over /rpc, found by reflection on the services themselves: none may be missing.
func TestWebServer_EveryMethodReachable(t *testing.T) {
	f := startWeb(t)
	var n int
	for _, svc := range f.Bindings() {
		typ := reflect.TypeOf(svc)
		for i := range typ.NumMethod() {
			m := typ.Method(i)
			args := []any{}
			for j := 1; j < m.Type.NumIn(); j++ {
				args = append(args, reflect.Zero(m.Type.In(j)).Interface())
			}
			name := typ.Elem().Name() + "." + m.Name
			status, body := f.rpc(t, name, args...)
			if status == http.StatusNotFound && errorBody(t, body).Code == CodeNotBound ||
				status == http.StatusBadRequest && errorBody(t, body).Code == CodeBadRequest {
				t.Errorf("%s is not reachable: %d %s", name, status, body)
			}
			n++
		}
	}
	if n < 25 {
		t.Fatalf("only %d methods bound", n)
	}
}

// TestFrontendContract checks that every call the frontend makes names a bound method and
// that the event names match (frontend/src/api/services.ts and events.ts).
func TestFrontendContract(t *testing.T) {
	services, err := os.ReadFile("../frontend/src/api/services.ts")
	if err != nil {
		t.Skipf("frontend sources: %v", err)
	}
	ta := mustOpenApp(t)
	reg, err := newRPCRegistry(ta.Bindings())
	if err != nil {
		t.Fatal(err)
	}
	calls := regexp.MustCompile(`call<[^>]*>\(\s*'(\w+)',\s*'(\w+)'`).FindAllStringSubmatch(string(services), -1)
	if len(calls) < 20 {
		t.Fatalf("found %d calls in services.ts", len(calls))
	}
	for _, c := range calls {
		if _, ok := reg[c[1]+"."+c[2]]; !ok {
			t.Errorf("the frontend calls %s.%s, which is not bound", c[1], c[2])
		}
	}
	events, err := os.ReadFile("../frontend/src/api/events.ts")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{EventSyncPlatformsProgress, EventSyncPlatformsDone, EventFleetStatus} {
		if !strings.Contains(string(events), "'"+name+"'") {
			t.Errorf("events.ts lacks %s", name)
		}
	}
}

func TestWebServer_Events(t *testing.T) {
	f := startWeb(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/events?session="+f.session, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %v", resp.StatusCode, resp.Header)
	}
	lines := bufio.NewReader(resp.Body)
	// The stream opens with a comment.
	if l, err := lines.ReadString('\n'); err != nil || !strings.HasPrefix(l, ":") {
		t.Fatalf("first line %q, %v", l, err)
	}

	// A real event: Sync Platforms over /rpc (no platforms) emits sync-platforms:done.
	if status, body := f.rpc(t, "SettingsService.GenerateSyncToken"); status != http.StatusOK {
		t.Fatalf("GenerateSyncToken: %d %s", status, body)
	}
	if status, body := f.rpc(t, "FleetService.SyncPlatforms"); status != http.StatusOK {
		t.Fatalf("SyncPlatforms: %d %s", status, body)
	}
	for {
		l, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v", err)
		}
		data, ok := strings.CutPrefix(strings.TrimRight(l, "\n"), "data: ")
		if !ok {
			continue
		}
		var msg struct {
			Name string     `json:"name"`
			Data SyncReport `json:"data"`
		}
		if err := json.Unmarshal([]byte(data), &msg); err != nil {
			t.Fatalf("event data %q: %v", data, err)
		}
		if msg.Name != EventSyncPlatformsDone || msg.Data.Results == nil {
			t.Fatalf("event %+v", msg)
		}
		break
	}

	t.Run("closing the broadcaster ends the stream", func(t *testing.T) {
		f.events.Close()
		if _, err := io.Copy(io.Discard, lines); err != nil {
			t.Fatalf("stream ended with %v", err)
		}
	})
}

func TestCheckListenAddr(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:0", false, true},
		{"127.0.0.1:8080", false, true},
		{"localhost:8080", false, true},
		{"[::1]:8080", false, true},
		{"127.1.2.3:8080", false, true},
		{"0.0.0.0:8080", false, false},
		{":8080", false, false},
		{"192.0.2.10:8080", false, false},
		{"[::]:8080", false, false},
		{"example.com:8080", false, false},
		{"0.0.0.0:8080", true, true},
		{"192.0.2.10:8080", true, true},
		{"127.0.0.1", false, false},
	} {
		err := CheckListenAddr(tc.addr, tc.remote)
		if (err == nil) != tc.ok {
			t.Errorf("CheckListenAddr(%q, %v) = %v, want ok %v", tc.addr, tc.remote, err, tc.ok)
		}
	}
}

func TestNewWebServer_Refuses(t *testing.T) {
	ta := mustOpenApp(t)
	if _, err := NewWebServer(ta.App, WebOptions{Addr: "127.0.0.1:8080", Session: "short"}); err == nil {
		t.Error("a short session token was accepted")
	}
	session, _ := NewSessionToken()
	if len(session) != 43 {
		t.Errorf("session token %q", session)
	}
	if _, err := NewWebServer(ta.App, WebOptions{Addr: "127.0.0.1:0", Session: session}); err == nil {
		t.Error("an address without its real port was accepted")
	}
}
