package main_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

const (
	syncToken     = "sync-token-0123456789abcdefghijklmnopqrstuvwxyz"
	platformToken = "platform-token-0123456789abcdefghijklmnopqrstuv"
)

// binary is the mooxsync-agent built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mooxsync-agent-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mooxsync-agent")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build mooxsync-agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test reading.
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

// runCLI runs the binary to completion and returns its exit code and output.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(baseEnv(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String(), errOut.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, out.String(), errOut.String()
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		t.Fatalf("%v did not exit", args)
		return 0, "", ""
	}
}

// baseEnv is the environment without any of the agent's variables.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SYNC_") || strings.HasPrefix(kv, "MOOXSYNC_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// agentProc is a running mooxsync-agent serve.
type agentProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	base   string
	client *http.Client
	stderr *syncBuffer
	done   chan error
}

// startAgent starts "serve" with args and waits until /api/health answers.
func startAgent(t *testing.T, tlsOn bool, addr string, env []string, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{t: t, addr: addr, stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, append([]string{"serve", "--listen", addr}, args...)...)
	p.cmd.Env = append(append(baseEnv(), "SYNC_TOKEN="+syncToken), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", p.stderr.String())
		}
	})
	// The test talks to the agent over loopback whatever address it listens on.
	dial := strings.Replace(addr, "0.0.0.0:", "127.0.0.1:", 1)
	p.base = "http://" + dial
	p.client = &http.Client{Timeout: 30 * time.Second}
	if tlsOn {
		p.base = "https://" + dial
		p.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := p.client.Get(p.base + "/api/health")
		if err == nil {
			res.Body.Close()
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("agent exited early: %v\n%s", err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not come up: %v\n%s", err, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig and waits for the exit code.
func (p *agentProc) stop(sig syscall.Signal) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatal("agent did not stop")
	}
	return p.cmd.ProcessState.ExitCode()
}

type reply struct {
	status int
	body   []byte
}

func (p *agentProc) send(req *http.Request) reply {
	p.t.Helper()
	res, err := p.client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{res.StatusCode, b}
}

func (p *agentProc) control(method, uri string, v any, key []byte) reply {
	p.t.Helper()
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			p.t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(method, p.base+uri, bytes.NewReader(body))
	protocol.Signer{}.SignControl(method, uri, body, key).Set(req.Header)
	return p.send(req)
}

func ctlKey() []byte { return protocol.ControlKey(platformToken, syncToken) }

func (p *agentProc) enroll(id int64) protocol.EnrollResponse {
	p.t.Helper()
	r := p.control(http.MethodPost, "/api/enroll", protocol.EnrollRequest{
		Platform:      protocol.Platform{ID: id, Name: "blog", Domain: "blog.example", AgentURL: p.base},
		PlatformToken: platformToken,
	}, protocol.BootKey(syncToken))
	if r.status != http.StatusOK {
		p.t.Fatalf("enroll = %d %s", r.status, r.body)
	}
	var out protocol.EnrollResponse
	if err := json.Unmarshal(r.body, &out); err != nil {
		p.t.Fatal(err)
	}
	return out
}

func (p *agentProc) deliver(sender, self int64, b protocol.Batch) reply {
	p.t.Helper()
	body, err := json.Marshal(b)
	if err != nil {
		p.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, p.base+"/sync-webhook", bytes.NewReader(body))
	protocol.Signer{}.SignData(b.BatchID, body, protocol.PairKey(ctlKey(), sender, self)).Set(req.Header)
	req.Header.Set(protocol.HeaderPlatform, protocol.FormatID(sender))
	return p.send(req)
}

func (p *agentProc) status() protocol.Status {
	p.t.Helper()
	r := p.control(http.MethodGet, "/api/status", nil, ctlKey())
	if r.status != http.StatusOK {
		p.t.Fatalf("status = %d %s", r.status, r.body)
	}
	var st protocol.Status
	if err := json.Unmarshal(r.body, &st); err != nil {
		p.t.Fatal(err)
	}
	return st
}
