package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mooxsync/mooxsync/backend/agent"
)

const initUsage = `Usage: mooxsync-agent init --state DIR [--host NAME]... [flags]

Prepares an agent: creates the state directory, writes the config file
DIR/` + agent.ConfigFileName + ` (or --config FILE) with the settings given, and generates the
agent's self-signed TLS certificate (ECDSA P-256) with the hostname, localhost, the loopback
addresses and every --host as names. It prints the certificate's fingerprint on standard
output: compare it with the one the control center shows when it enrolls the agent.

An existing config file is kept unless --force is given; an existing certificate is always
kept, since the control center pins it.

Flags:
`

func initCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	s := newSettings("init", stdout, stderr, initUsage)
	s.writesConfig = true
	force := s.fs.Bool("force", false, "overwrite an existing config file")
	cfg, err := s.parse(args, getenv)
	if err != nil {
		return usageError(stderr, err)
	}
	if cfg.State == "" {
		return usageError(stderr, errors.New("init needs --state DIR"))
	}
	path := s.config
	if path == "" {
		path = filepath.Join(cfg.State, agent.ConfigFileName)
	}
	if fileExists(path) && !*force {
		return usageError(stderr, fmt.Errorf("%s exists; pass --force to overwrite it", path))
	}
	if err := os.MkdirAll(cfg.State, 0o700); err != nil {
		fmt.Fprintf(stderr, "mooxsync-agent: create state directory: %v\n", err)
		return exitRuntime
	}
	if err := agent.WriteConfig(path, cfg); err != nil {
		fmt.Fprintf(stderr, "mooxsync-agent: %v\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stderr, "wrote %s\n", path)
	certFile, created := cfg.TLSCert, false
	if certFile == "" {
		certFile, _, created, err = agent.EnsureCertificate(cfg.State, agent.CertificateHosts(cfg.Hosts))
		if err != nil {
			fmt.Fprintf(stderr, "mooxsync-agent: %v\n", err)
			return exitRuntime
		}
	}
	fp, err := agent.CertificateFingerprint(certFile)
	if err != nil {
		fmt.Fprintf(stderr, "mooxsync-agent: %v\n", err)
		return exitRuntime
	}
	if created {
		fmt.Fprintf(stderr, "generated certificate %s\n", certFile)
	} else {
		fmt.Fprintf(stderr, "kept certificate %s\n", certFile)
	}
	fmt.Fprintln(stdout, fp)
	return exitOK
}
