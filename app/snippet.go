package app

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/mooxsync/mooxsync/backend/catalog"
)

// Where the snippet installs the agent on a server.
const (
	agentBinary   = "/usr/local/bin/mooxsync-agent"
	agentStateDir = "/var/lib/mooxsync-agent"
	agentEnvDir   = "/etc/mooxsync-agent"
	agentEnvFile  = agentEnvDir + "/env"
	agentUnit     = "/etc/systemd/system/mooxsync-agent.service"
	agentUser     = "mooxsync"
	// syncTokenPlaceholder is shorter than a token may be, so an agent started with it
	// refuses to run instead of running with a guessable token.
	syncTokenPlaceholder = "PASTE_THE_SYNC_TOKEN_HERE"
)

// agentSnippet writes a shell snippet, to run as root on the platform's server, that
// installs the agent binary, initialises its state (config and TLS certificate), keeps the
// sync token in an environment file readable by root only, and runs the agent as a
// systemd service. syncToken "" writes a placeholder instead of the token.
func agentSnippet(p catalog.Platform, syncToken string) string {
	listen, scheme := agentListen(p.AgentURL)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	w("# mooxsync agent for platform #%d %s (%s), agent URL %s", p.ID, p.Name, p.Domain, p.AgentURL)
	w("# Run as root on %s. First copy the agent binary there, e.g. from the control", p.Domain)
	w("# center's machine (make agent builds it):  scp bin/mooxsync-agent root@%s:/tmp/mooxsync-agent", p.Domain)
	w("set -eu")
	w("install -m 0755 /tmp/mooxsync-agent %s", agentBinary)
	w("id -u %[1]s >/dev/null 2>&1 || useradd --system --home-dir %[2]s --shell /usr/sbin/nologin %[1]s", agentUser, agentStateDir)
	w("install -d -m 0700 -o %[1]s -g %[1]s %[2]s", agentUser, agentStateDir)
	w("")
	w("# The application database (sqlite:/path/app.db, postgres://..., mysql://...): replace the")
	w("# example DSN, and give the %s user access to the database.", agentUser)
	initFlags := fmt.Sprintf("--state %s --listen %s --host %s --db %s",
		agentStateDir, shellQuote(listen), shellQuote(p.Domain), shellQuote("sqlite:/var/www/app/database.sqlite"))
	if scheme == "http" {
		w("# The agent URL is plain http: serve plain HTTP only behind a proxy that terminates TLS.")
		initFlags += " --insecure-http"
	}
	w("# init prints the fingerprint of the agent's TLS certificate: compare it with the one")
	w("# the control center shows when it probes the agent.")
	w("runuser -u %s -- %s init %s", agentUser, agentBinary, initFlags)
	w("")
	w("# The sync token, readable by root only; systemd hands it to the agent.")
	w("install -d -m 0700 %s", agentEnvDir)
	if syncToken == "" {
		w("# Replace the placeholder with the fleet's sync token (control center: Settings).")
		w("if [ ! -s %s ]; then", agentEnvFile)
		w("  (umask 077; printf 'SYNC_TOKEN=%%s\\n' %s > %s)", shellQuote(syncTokenPlaceholder), agentEnvFile)
		w("fi")
	} else {
		w("(umask 077; printf 'SYNC_TOKEN=%%s\\n' %s > %s)", shellQuote(syncToken), agentEnvFile)
	}
	w("chmod 0600 %s", agentEnvFile)
	w("")
	w("cat > %s <<'UNIT'", agentUnit)
	w("[Unit]")
	w("Description=mooxsync agent (platform #%d)", p.ID)
	w("Wants=network-online.target")
	w("After=network-online.target")
	w("")
	w("[Service]")
	w("User=%s", agentUser)
	w("Group=%s", agentUser)
	w("EnvironmentFile=%s", agentEnvFile)
	w("ExecStart=%s serve --state %s", agentBinary, agentStateDir)
	w("Restart=on-failure")
	w("RestartSec=5")
	if port, err := strconv.Atoi(listen[strings.LastIndexByte(listen, ':')+1:]); err == nil && port < 1024 {
		w("AmbientCapabilities=CAP_NET_BIND_SERVICE")
	}
	w("NoNewPrivileges=yes")
	w("PrivateTmp=yes")
	w("ProtectHome=read-only")
	w("ProtectSystem=full")
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	w("UNIT")
	w("systemctl daemon-reload")
	w("systemctl enable --now mooxsync-agent")
	w("systemctl --no-pager status mooxsync-agent")
	return b.String()
}

// agentListen returns the address the agent listens on (":PORT" of its URL, by default
// 443 for https and 80 for http) and the URL's scheme.
func agentListen(agentURL string) (listen, scheme string) {
	u, err := url.Parse(agentURL)
	if err != nil {
		return ":7443", "https"
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return ":" + port, u.Scheme
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
