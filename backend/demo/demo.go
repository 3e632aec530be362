// Package demo sets up the local demo fleet that `make run` starts: two platforms, Shop and
// Blog, each an agent on loopback next to a SQLite application database with a small
// Laravel-like schema (users with a ulid, posts with a slug), registered in the control
// center's catalog with their tokens in its secret store, and one example sync of the
// Shop's posts to the Blog's posts.
//
// It goes through the catalog and secrets packages as the control center does; it never
// writes the catalog's tables itself.
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// Site is one platform of the demo fleet.
type Site struct {
	// Key names its files: <dir>/<key>.db and the agent's directory <dir>/<key>/.
	Key    string
	Name   string
	Domain string
	Port   int
	Order  int64
}

// Default ports of the demo agents.
const (
	DefaultShopPort = 7441
	DefaultBlogPort = 7442
)

// Sites returns the demo's two platforms on the given ports.
func Sites(shopPort, blogPort int) []Site {
	return []Site{
		{Key: "shop", Name: "Shop", Domain: "shop.localhost", Port: shopPort, Order: 1},
		{Key: "blog", Name: "Blog", Domain: "blog.localhost", Port: blogPort, Order: 2},
	}
}

// AgentURL is where the site's agent listens: plain HTTP on loopback.
func (s Site) AgentURL() string { return "http://127.0.0.1:" + strconv.Itoa(s.Port) }

// Listen is the agent's --listen address.
func (s Site) Listen() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// DBPath is the site's application database in the demo directory.
func (s Site) DBPath(dir string) string { return filepath.Join(dir, s.Key+".db") }

// AgentDir is the site's agent state directory in the demo directory.
func (s Site) AgentDir(dir string) string { return filepath.Join(dir, s.Key) }

// The example sync: the Shop's posts go to the Blog's posts.
const (
	ExampleModel = "posts"
	bindingFile  = "demo-binding"
)

// Registered is what Register set up.
type Registered struct {
	// SyncToken is the fleet's sync token, which the agents need as SYNC_TOKEN.
	SyncToken string
	// NewSyncToken is set when Register generated it.
	NewSyncToken bool
	// Platforms are the catalog's platforms of the sites, in the order of the sites.
	Platforms []catalog.Platform
	// Created lists the names of the platforms Register created.
	Created []string
	// Sync is the example sync; SyncCreated is set when Register created it.
	Sync        catalog.Sync
	SyncCreated bool
	// Reset lists the sites whose agent state Register cleared because it belonged to
	// another platform, token or catalog.
	Reset []string
}

// Register makes sure the catalog and the secret store hold what the demo needs, creating
// only what is missing: the fleet's sync token, a platform per site (found by its agent
// URL) with its token, and the example sync. An admin's changes to them are kept.
//
// The agent of a site is enrolled as one platform with one token; its state directory
// remembers which (a hash, in <agent dir>/demo-binding). When that no longer matches —
// the catalog or the keyring was reset, or the platform deleted and created anew — the
// agent's state directory is emptied and the platform's enrollment reset in the catalog,
// so that the next Sync Platforms enrolls the agent afresh instead of failing with
// already_enrolled.
func Register(ctx context.Context, cat *catalog.Store, sec secrets.Store, dir string, sites []Site) (Registered, error) {
	var reg Registered
	tok, created, err := ensureSecret(ctx, sec, secrets.SyncTokenKey)
	if err != nil {
		return reg, fmt.Errorf("sync token: %w", err)
	}
	reg.SyncToken, reg.NewSyncToken = tok, created
	if created {
		// The pair keys derive from the sync token: agents need a new desired state.
		if _, err := cat.BumpRevision(ctx); err != nil {
			return reg, err
		}
	}

	existing, err := cat.Platforms(ctx)
	if err != nil {
		return reg, err
	}
	for _, site := range sites {
		p, made, err := ensurePlatform(ctx, cat, existing, site)
		if err != nil {
			return reg, err
		}
		if made {
			reg.Created = append(reg.Created, p.Name)
		}
		token, _, err := ensureSecret(ctx, sec, secrets.PlatformKey(p.ID))
		if err != nil {
			return reg, fmt.Errorf("token of platform %s: %w", p.Name, err)
		}
		reset, err := bindAgent(ctx, cat, p, token, site.AgentDir(dir))
		if err != nil {
			return reg, err
		}
		if reset {
			reg.Reset = append(reg.Reset, p.Name)
			if p, err = cat.Platform(ctx, p.ID); err != nil {
				return reg, err
			}
		}
		reg.Platforms = append(reg.Platforms, p)
	}

	if len(reg.Platforms) >= 2 {
		src, dst := reg.Platforms[0], reg.Platforms[1]
		reg.Sync, reg.SyncCreated, err = ensureSync(ctx, cat, src, dst)
		if err != nil {
			return reg, err
		}
	}
	return reg, nil
}

// ensureSecret returns the secret under key, storing a new random token there first when
// there is none.
func ensureSecret(ctx context.Context, sec secrets.Store, key string) (string, bool, error) {
	v, err := sec.Get(ctx, key)
	if err == nil {
		return v, false, nil
	}
	if !errors.Is(err, secrets.ErrNotFound) {
		return "", false, err
	}
	if v, err = protocol.GenerateToken(); err != nil {
		return "", false, err
	}
	if err := sec.Set(ctx, key, v); err != nil {
		return "", false, err
	}
	return v, true, nil
}

// ensurePlatform finds the site's platform by its agent URL, or creates it.
func ensurePlatform(ctx context.Context, cat *catalog.Store, existing []catalog.Platform, site Site) (catalog.Platform, bool, error) {
	url := site.AgentURL()
	for _, p := range existing {
		if p.AgentURL == url {
			return p, false, nil
		}
	}
	ip := "127.0.0.1"
	p, err := cat.CreatePlatform(ctx, catalog.Platform{
		Name: site.Name, Domain: site.Domain, IPAddress: &ip, AgentURL: url, ShowInMenu: true, Order: site.Order,
	})
	if err != nil {
		var verr *catalog.ValidationError
		if errors.As(err, &verr) {
			return p, false, fmt.Errorf("register the demo platform %s (%s): %w; rename or delete that platform, "+
				"or start the demo on other ports", site.Name, url, err)
		}
		return p, false, fmt.Errorf("register the demo platform %s: %w", site.Name, err)
	}
	return p, true, nil
}

// ensureSync finds the example sync (any sync of the source's posts to the target's
// posts), or creates it.
func ensureSync(ctx context.Context, cat *catalog.Store, src, dst catalog.Platform) (catalog.Sync, bool, error) {
	syncs, err := cat.Syncs(ctx, catalog.SyncFilter{SourcePlatformID: src.ID, TargetPlatformID: dst.ID})
	if err != nil {
		return catalog.Sync{}, false, err
	}
	for _, s := range syncs {
		if s.SourceModel == ExampleModel && s.TargetModel == ExampleModel {
			return s, false, nil
		}
	}
	s, err := cat.CreateSync(ctx, catalog.Sync{
		SourcePlatformID: src.ID, SourceModel: ExampleModel,
		TargetPlatformID: dst.ID, TargetModel: ExampleModel,
		IfExists: protocol.IfExistsUpdate, SyncAllFields: true, Interval: 60, Status: true,
	})
	if err != nil {
		return catalog.Sync{}, false, fmt.Errorf("register the example sync: %w", err)
	}
	return s, true, nil
}

// binding identifies what an agent's state was enrolled as: the catalog, the platform and
// its token (hashed: the file is not a secret store).
func binding(cat *catalog.Store, p catalog.Platform, token string) string {
	abs, err := filepath.Abs(cat.Path())
	if err != nil {
		abs = cat.Path()
	}
	sum := sha256.Sum256([]byte("mooxsync demo binding\n" + abs + "\n" + strconv.FormatInt(p.ID, 10) + "\n" + token))
	return hex.EncodeToString(sum[:])
}

// bindAgent makes sure the agent state in agentDir belongs to platform p with token: when
// the recorded binding differs (or there is none), it empties agentDir, resets the
// platform's enrollment if the catalog has one, and records the new binding. It reports
// whether it reset anything.
func bindAgent(ctx context.Context, cat *catalog.Store, p catalog.Platform, token, agentDir string) (bool, error) {
	want := binding(cat, p, token)
	file := filepath.Join(agentDir, bindingFile)
	got, err := os.ReadFile(file)
	if err == nil && strings.TrimSpace(string(got)) == want {
		return false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("agent state of %s: %w", p.Name, err)
	}
	reset := false
	if entries, err := os.ReadDir(agentDir); err == nil && len(entries) > 0 {
		// Enrolled as another platform, or with another token: start the agent afresh.
		if err := os.RemoveAll(agentDir); err != nil {
			return false, fmt.Errorf("clear the agent state of %s: %w", p.Name, err)
		}
		reset = true
	}
	if p.Enrolled() || p.TLSFingerprint != nil {
		// The catalog remembers an agent that no longer has that enrollment.
		if err := cat.ResetEnrollment(ctx, p.ID); err != nil {
			return false, err
		}
		reset = true
	}
	if err := os.MkdirAll(agentDir, 0o700); err != nil {
		return false, fmt.Errorf("agent state of %s: %w", p.Name, err)
	}
	if err := os.WriteFile(file, []byte(want+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("agent state of %s: %w", p.Name, err)
	}
	return reset, nil
}
