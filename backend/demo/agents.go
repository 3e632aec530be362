package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// Agent is a running demo agent: a mooxsync-agent serve child process.
type Agent struct {
	Site Site
	// Log is the file its output goes to.
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// AgentConfigFile is the agent's config file, written by mooxsync-agent init.
func AgentConfigFile(dir string, site Site) string {
	return filepath.Join(site.AgentDir(dir), "mooxsync-agent.json")
}

// StartAgent starts the site's agent from the binary bin: plain HTTP on its loopback port,
// its application database and state in dir, syncToken as SYNC_TOKEN, its output appended
// to <agent dir>/agent.log. On first use it runs `mooxsync-agent init` to write the agent's
// config file, which an admin may then edit. It fails when the port is taken.
func StartAgent(ctx context.Context, bin, dir string, site Site, syncToken string) (*Agent, error) {
	if err := portFree(site.Listen()); err != nil {
		return nil, err
	}
	agentDir := site.AgentDir(dir)
	db := "sqlite:" + site.DBPath(dir)
	if _, err := os.Stat(AgentConfigFile(dir, site)); errors.Is(err, os.ErrNotExist) {
		out, err := exec.CommandContext(ctx, bin, "init", "--state", agentDir, "--db", db,
			"--listen", site.Listen(), "--plain-http").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("%s init for %s: %w\n%s", filepath.Base(bin), site.Name, err, out)
		}
	}
	logPath := filepath.Join(agentDir, "agent.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent log of %s: %w", site.Name, err)
	}
	// Flags repeat what init wrote, so that other ports given to the demo win.
	cmd := exec.Command(bin, "serve", "--state", agentDir, "--db", db, "--listen", site.Listen(), "--plain-http")
	cmd.Env = append(os.Environ(), "SYNC_TOKEN="+syncToken)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start the agent of %s: %w", site.Name, err)
	}
	a := &Agent{Site: site, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		a.err = cmd.Wait()
		_ = logFile.Close()
		close(a.done)
	}()
	return a, nil
}

// Done is closed when the agent process has exited; Err then says how.
func (a *Agent) Done() <-chan struct{} { return a.done }

// Err is the agent's exit status, once Done is closed.
func (a *Agent) Err() error { return a.err }

// Stop asks the agent to stop (SIGTERM) and waits for it, killing it after timeout.
func (a *Agent) Stop(timeout time.Duration) error {
	select {
	case <-a.done:
		return nil
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(timeout):
		_ = a.cmd.Process.Kill()
		<-a.done
		return fmt.Errorf("the agent of %s did not stop within %s: killed", a.Site.Name, timeout)
	}
	var exit *exec.ExitError
	if errors.As(a.err, &exit) {
		return fmt.Errorf("the agent of %s: %w", a.Site.Name, a.err)
	}
	return nil
}

// WaitHealthy waits until the agent answers GET /api/health, or its process exits, or ctx
// ends.
func (a *Agent) WaitHealthy(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	url := a.Site.AgentURL() + "/api/health"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			var h protocol.Health
			derr := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&h)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && derr == nil {
				return nil
			}
		}
		select {
		case <-a.done:
			return fmt.Errorf("the agent of %s exited (%v); see %s", a.Site.Name, a.err, a.Log)
		case <-ctx.Done():
			return fmt.Errorf("the agent of %s does not answer on %s: %w; see %s", a.Site.Name, url, ctx.Err(), a.Log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// portFree fails when something listens on addr already, e.g. the agents of another
// `make run`.
func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is in use (is another `make run` still running?): %w", addr, err)
	}
	return ln.Close()
}
