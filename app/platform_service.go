package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// probeTimeout bounds a Probe of an agent that is not trusted yet.
const probeTimeout = 15 * time.Second

// PlatformService manages the platforms of the catalog and their tokens in the secret
// store.
type PlatformService struct {
	ctx     context.Context
	log     *slog.Logger
	catalog *catalog.Store
	secrets secrets.Store
	syncer  *fleet.Syncer
	lookup  fleet.IPLookup
}

func (s *PlatformService) fail(op string, err error) error {
	return failure(s.log, "PlatformService."+op, err)
}

// List returns every platform, ordered by order, then name.
func (s *PlatformService) List() ([]Platform, error) {
	ps, err := s.catalog.Platforms(s.ctx)
	if err != nil {
		return nil, s.fail("List", err)
	}
	out := make([]Platform, 0, len(ps))
	for _, p := range ps {
		out = append(out, platformOut(p))
	}
	return out, nil
}

// Save creates the platform (ID 0) or updates its editable fields, and returns it as
// stored. A new platform gets a new token in the secret store; if the token cannot be
// stored, the platform is not created.
func (s *PlatformService) Save(in PlatformInput) (Platform, error) {
	if in.ID != 0 {
		p, err := s.catalog.UpdatePlatform(s.ctx, in.catalog())
		if err != nil {
			return Platform{}, s.fail("Save", err)
		}
		return platformOut(p), nil
	}
	p, err := s.catalog.CreatePlatform(s.ctx, in.catalog())
	if err != nil {
		return Platform{}, s.fail("Save", err)
	}
	if err := s.ensureToken(p.ID); err != nil {
		if derr := s.catalog.DeletePlatform(context.WithoutCancel(s.ctx), p.ID); derr != nil {
			s.log.Error("remove a platform whose token could not be stored", "platform_id", p.ID, "err", derr)
		}
		return Platform{}, s.fail("Save", err)
	}
	return platformOut(p), nil
}

// ensureToken stores a new token for platform id unless it has one.
func (s *PlatformService) ensureToken(id int64) error {
	_, err := s.secrets.Get(s.ctx, secrets.PlatformKey(id))
	if !errors.Is(err, secrets.ErrNotFound) {
		return err
	}
	token, err := protocol.GenerateToken()
	if err != nil {
		return err
	}
	return s.secrets.Set(s.ctx, secrets.PlatformKey(id), token)
}

// Delete deletes a platform that no sync uses, with its token.
func (s *PlatformService) Delete(id int64) error {
	if err := s.catalog.DeletePlatform(s.ctx, id); err != nil {
		return s.fail("Delete", err)
	}
	for _, key := range []string{secrets.PlatformKey(id), fleet.PendingTokenKey(id)} {
		if err := s.secrets.Delete(s.ctx, key); err != nil && !errors.Is(err, secrets.ErrNotFound) {
			// Platform ids are never reused, so a leftover token is never used again.
			s.log.Warn("delete the token of a deleted platform", "platform_id", id, "err", err)
		}
	}
	return nil
}

// GenerateToken returns a new random token (43 characters) for the platform form.
func (s *PlatformService) GenerateToken() (string, error) {
	t, err := protocol.GenerateToken()
	return t, s.fail("GenerateToken", err)
}

// SetToken stores the token of a platform whose agent is not enrolled yet. An enrolled
// agent holds its token: change it with RotateToken, which hands the new one to the agent
// first.
func (s *PlatformService) SetToken(id int64, token string) error {
	p, err := s.catalog.Platform(s.ctx, id)
	if err != nil {
		return s.fail("SetToken", err)
	}
	token = strings.TrimSpace(token)
	if err := protocol.CheckToken(token); err != nil {
		return fieldError("token", fmt.Sprintf("the token must be at least %d characters; use Generate", protocol.MinTokenLength))
	}
	old, err := s.secrets.Get(s.ctx, secrets.PlatformKey(id))
	switch {
	case err == nil && old == token:
		return nil
	case err != nil && !errors.Is(err, secrets.ErrNotFound):
		return s.fail("SetToken", err)
	}
	if p.Enrolled() && err == nil {
		return newError(CodeConflict, fmt.Sprintf(
			"the agent of platform #%d %s is enrolled with its current token; use Rotate token to change it", id, p.Name))
	}
	if err := s.secrets.Set(s.ctx, secrets.PlatformKey(id), token); err != nil {
		return s.fail("SetToken", err)
	}
	// The pair keys of the platform's peers derive from its token.
	if _, err := s.catalog.BumpRevision(s.ctx); err != nil {
		return s.fail("SetToken", err)
	}
	return nil
}

// HasToken reports whether the secret store holds a token for the platform.
func (s *PlatformService) HasToken(id int64) (bool, error) {
	_, err := s.secrets.Get(s.ctx, secrets.PlatformKey(id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, secrets.ErrNotFound):
		return false, nil
	}
	return false, s.fail("HasToken", err)
}

// RevealToken returns the platform's token, for an admin to copy.
func (s *PlatformService) RevealToken(id int64) (string, error) {
	t, err := s.secrets.Get(s.ctx, secrets.PlatformKey(id))
	if errors.Is(err, secrets.ErrNotFound) {
		return "", newError(CodeNotFound, fmt.Sprintf("platform %d has no token", id))
	}
	return t, s.fail("RevealToken", err)
}

// RotateToken gives the platform a new token. An enrolled agent receives it first and
// the secret store is updated only after the agent confirmed it (fleet's rotation); a
// platform whose agent is not enrolled simply gets a new token. The revision is bumped
// either way: run Sync Platforms to hand the new pair keys to the platform's peers.
func (s *PlatformService) RotateToken(id int64) error {
	p, err := s.catalog.Platform(s.ctx, id)
	if err != nil {
		return s.fail("RotateToken", err)
	}
	if p.Enrolled() {
		// RotatePlatformToken bumps the revision once the new token is stored.
		return s.fail("RotateToken", s.syncer.RotatePlatformToken(s.ctx, id))
	}
	token, err := protocol.GenerateToken()
	if err != nil {
		return s.fail("RotateToken", err)
	}
	if err := s.secrets.Set(s.ctx, secrets.PlatformKey(id), token); err != nil {
		return s.fail("RotateToken", err)
	}
	_, err = s.catalog.BumpRevision(s.ctx)
	return s.fail("RotateToken", err)
}

// LookupIP returns the IP address of a domain (its first IPv4 address, else IPv6).
func (s *PlatformService) LookupIP(domain string) (string, error) {
	ip, err := s.lookup.LookupIP(s.ctx, domain)
	if err != nil {
		var dnsMsg string
		if errors.Is(err, fleet.ErrNoAddress) {
			dnsMsg = fmt.Sprintf("%s has no IP address", strings.TrimSpace(domain))
		} else {
			dnsMsg = err.Error()
		}
		return "", fieldError("domain", dnsMsg)
	}
	return ip, nil
}

// Probe contacts an agent that is not trusted yet and returns the fingerprint of its TLS
// certificate, for the admin to compare with what `mooxsync-agent init` printed, and its
// health. Nothing secret is sent.
func (s *PlatformService) Probe(agentURL string) (ProbeResult, error) {
	if err := checkAgentURL(agentURL); err != nil {
		return ProbeResult{}, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, probeTimeout)
	defer cancel()
	fp, h, err := fleet.Probe(ctx, strings.TrimRight(strings.TrimSpace(agentURL), "/"))
	if err != nil {
		return ProbeResult{}, s.fail("Probe", err)
	}
	return ProbeResult{Fingerprint: fp, Version: h.Version, Enrolled: h.Enrolled, PlatformID: h.PlatformID}, nil
}

// checkAgentURL refuses what Probe cannot contact, as a validation error of agent_url.
func checkAgentURL(raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil:
		return fieldError("agent_url", "agent_url is not a URL, e.g. https://shop.example:7443")
	case u.Scheme != "http" && u.Scheme != "https":
		return fieldError("agent_url", "agent_url must be an http or https URL, e.g. https://shop.example:7443")
	case u.Host == "":
		return fieldError("agent_url", "agent_url must name a host, e.g. https://shop.example:7443")
	case u.User != nil:
		return fieldError("agent_url", "agent_url must not contain a user name or password")
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "":
		return fieldError("agent_url", "agent_url must not have a path, query or fragment")
	}
	return nil
}

// AcceptFingerprint trusts the agent certificate with this fingerprint: it pins it when
// the platform has none pinned yet (after a Probe), or makes it the pinned one when it is
// the platform's pending fingerprint (the agent presented a new certificate). Any other
// fingerprint is a conflict.
func (s *PlatformService) AcceptFingerprint(id int64, fingerprint string) error {
	p, err := s.catalog.Platform(s.ctx, id)
	if err != nil {
		return s.fail("AcceptFingerprint", err)
	}
	if p.TLSFingerprint == nil {
		return s.fail("AcceptFingerprint", s.catalog.PinFingerprint(s.ctx, id, fingerprint))
	}
	if fp, err := catalog.NormalizeFingerprint(fingerprint); err == nil && fp == *p.TLSFingerprint {
		return nil
	}
	return s.fail("AcceptFingerprint", s.catalog.AcceptFingerprint(s.ctx, id, fingerprint))
}
