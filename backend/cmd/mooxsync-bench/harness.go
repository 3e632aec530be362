package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// syncToken is the fleet's sync token of the benchmark.
const syncToken = "bench-sync-token-0123456789abcdefghijklmnopqrstuvwxyz"

// platform is one platform of the benchmark fleet: its application database and, unless
// it is only a name (the legacy sender), its agent process.
type platform struct {
	id      int64
	name    string
	token   string
	dbPath  string
	state   string
	logPath string
	addr    string
	client  *fleet.Client
	cmd     *exec.Cmd
	done    chan struct{}
	logFile *os.File
	stopped bool
}

func newPlatform(dir string, id int64, name string) (*platform, error) {
	p := &platform{id: id, name: name,
		token: fmt.Sprintf("bench-platform-token-%02d-0123456789abcdefghijklmnopqrstuvwxyz", id)}
	p.state = filepath.Join(dir, name+"-state")
	p.dbPath = filepath.Join(dir, name+".db")
	p.logPath = filepath.Join(dir, name+"-agent.log")
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p.addr = addr
	return p, nil
}

func (p *platform) url() string { return "http://" + p.addr }

func (p *platform) protocolPlatform() protocol.Platform {
	return protocol.Platform{ID: p.id, Name: p.name, Domain: p.name + ".example", ShowInMenu: true,
		Order: p.id, AgentURL: p.url()}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs the platform's agent (plain HTTP on loopback), waits until it answers and
// enrolls it.
func (p *platform) start(bin, logLevel string) error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "serve", "--listen", p.addr, "--db", "sqlite:"+p.dbPath, "--state", p.state,
		"--plain-http", "--log-level", logLevel)
	cmd.Env = append(baseEnv(), "SYNC_TOKEN="+syncToken)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	p.cmd, p.logFile, p.done = cmd, logf, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	client, err := fleet.NewClient(fleet.ClientOptions{URL: p.url(), SyncToken: syncToken, PlatformToken: p.token})
	if err != nil {
		return err
	}
	p.client = client
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Health(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-p.done:
			return fmt.Errorf("agent %s exited at start: %v\n%s", p.name, cmd.ProcessState, p.logTail(20))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent %s did not come up: %v\n%s", p.name, err, p.logTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.Enroll(ctx, p.protocolPlatform()); err != nil {
		return fmt.Errorf("enroll %s: %w", p.name, err)
	}
	return nil
}

// alive reports whether the agent process is still running.
func (p *platform) alive() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for the agent to exit.
func (p *platform) stop() {
	if p.cmd == nil || p.stopped {
		return
	}
	p.stopped = true
	if p.alive() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if p.client != nil {
		p.client.Close()
	}
	p.logFile.Close()
}

func (p *platform) pid() int { return p.cmd.Process.Pid }

// logTail returns the last n lines of the agent's log.
func (p *platform) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logErrors counts the ERROR lines of the agent's log and returns the first few.
func (p *platform) logErrors() (int, []string) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 1, []string{err.Error()}
	}
	defer f.Close()
	n := 0
	var first []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte(`"level":"ERROR"`)) {
			n++
			if len(first) < 3 {
				first = append(first, sc.Text())
			}
		}
	}
	return n, first
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

// push puts the desired state of the fleet to every running agent, as Sync Platforms does.
func push(revision int64, platforms []*platform, syncs []protocol.Sync) error {
	snap := fleet.Fleet{Revision: revision, Syncs: syncs}
	tokens := map[int64]string{}
	for _, p := range platforms {
		snap.Platforms = append(snap.Platforms, fleet.FleetPlatform{Platform: p.protocolPlatform(),
			WebhookPath: protocol.DefaultWebhookPath, Enrolled: p.cmd != nil})
		tokens[p.id] = p.token
	}
	for _, p := range platforms {
		if p.cmd == nil {
			continue
		}
		st, err := fleet.DesiredState(snap, p.id, syncToken, tokens)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		rev, err := p.client.PutState(ctx, st)
		cancel()
		if err != nil || rev != revision {
			return fmt.Errorf("put state to %s: revision %d, %v\n%s", p.name, rev, err, p.logTail(20))
		}
	}
	return nil
}

// procStat is what /proc says about a process.
type procStat struct {
	cpu   time.Duration // user + system
	hwmKB int64         // VmHWM: peak resident set
	rssKB int64         // VmRSS
}

// clockTick is USER_HZ, 100 on every Linux the agent runs on.
const clockTick = 100

func readProc(pid int) (procStat, error) {
	var s procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = time.Duration(utime+stime) * time.Second / clockTick
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			s.hwmKB = n
		case "VmRSS":
			s.rssKB = n
		}
	}
	return s, nil
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU time of the agents and of the benchmark over a stage.
type cpuMeter struct {
	pids  []int
	start []time.Duration
	self  time.Duration
	at    time.Time
}

func startCPU(pids ...int) *cpuMeter {
	m := &cpuMeter{pids: pids, self: selfCPU(), at: time.Now()}
	for _, pid := range pids {
		s, _ := readProc(pid)
		m.start = append(m.start, s.cpu)
	}
	return m
}

// stop returns the CPU time each pid and the benchmark itself used since start, and the
// wall time.
func (m *cpuMeter) stop() (per []time.Duration, self, wall time.Duration) {
	for i, pid := range m.pids {
		s, _ := readProc(pid)
		per = append(per, s.cpu-m.start[i])
	}
	return per, selfCPU() - m.self, time.Since(m.at)
}
