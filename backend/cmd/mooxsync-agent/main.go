// Command mooxsync-agent is the mooxsync agent: the headless service that runs next to one
// platform's application database, enrolled and steered by the mooxsync control center.
//
//	mooxsync-agent init --state DIR [--host NAME]...   write a config file and a certificate
//	mooxsync-agent serve --db DSN --state DIR          serve the agent (SYNC_TOKEN in the environment)
//	mooxsync-agent version                             print the version
//
// Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/mooxsync/mooxsync/backend/agent"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return serveCmd(args[1:], getenv, stdout, stderr)
	case "init":
		return initCmd(args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "mooxsync-agent %s (protocol %s, %s %s/%s)\n", agent.Version, protocol.Version,
			runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "mooxsync-agent: unknown command %q\n\n%s", args[0], usageText)
		return exitUsage
	}
}

const usageText = `mooxsync-agent — the mooxsync agent, one per platform, next to its application database.

It is enrolled and steered by the mooxsync control center: it keeps the desired state the
control center puts to it, serves the control plane (/api/...) and receives signed data
deliveries on its webhook path, applying them in order, exactly once, to the application
database. Its own state (enrollment, desired state, inbox, dead letters) lives in a SQLite
file in the state directory, never in the application database.

Usage:
  mooxsync-agent init  --state DIR [--host NAME]... [flags]   write a config file and a TLS certificate,
                                                            print the certificate's fingerprint
  mooxsync-agent serve [--config FILE] [flags]               serve the agent until SIGTERM or SIGINT
  mooxsync-agent version                                     print the version
  mooxsync-agent help                                        print this help

Run "mooxsync-agent serve --help" or "mooxsync-agent init --help" for their flags.

Environment:
  SYNC_TOKEN               the fleet's sync token (required by serve, at least 32 characters)
  SYNC_WEBHOOK_URL         webhook path (or a URL whose path is used), like --webhook-path
  SYNC_WEBHOOK_ENABLED     false: the webhook path answers 404 (default true)
  SYNC_LISTENER_ENABLED    change capture switch, kept for the capture (default true)
  SYNC_BACKUP_JOB_ENABLED  true: every sync is reconciled every interval minutes (default false)
  SYNC_INITIAL_LOAD_ENABLED  false: new and re-enabled syncs do not first copy the rows the
                           source has already (default true)
  MOOXSYNC_CONFIG, MOOXSYNC_LISTEN, MOOXSYNC_DB, MOOXSYNC_STATE, MOOXSYNC_TLS_CERT,
  MOOXSYNC_TLS_KEY, MOOXSYNC_LOG_LEVEL   fallbacks of the flags of the same name

Settings are taken from the defaults, then the config file, then the environment, then the
flags: a flag wins over everything.

Exit codes: 0 success, 1 runtime failure (database, listener, ...), 2 usage or configuration
error (bad flag, missing or short SYNC_TOKEN, plain HTTP refused, ...).
`
