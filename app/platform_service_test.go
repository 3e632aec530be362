package app

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

func TestPlatformService_Save(t *testing.T) {
	ta := mustOpenApp(t)
	ctx := context.Background()

	t.Run("create stores a token", func(t *testing.T) {
		p := ta.mustPlatform(t, "Shop", "https://shop.example:7443")
		if p.ID == 0 || p.Domain != "shop.example" || p.CreatedAt == "" || p.TLSFingerprint != nil || p.EnrolledAt != nil {
			t.Fatalf("created %+v", p)
		}
		tok, err := ta.secrets.Get(ctx, secrets.PlatformKey(p.ID))
		if err != nil || len(tok) != 43 {
			t.Fatalf("token of the new platform: %q, %v", tok, err)
		}
		if has, err := ta.Platforms.HasToken(p.ID); err != nil || !has {
			t.Fatalf("HasToken = %v, %v", has, err)
		}
		if got, err := ta.Platforms.RevealToken(p.ID); err != nil || got != tok {
			t.Fatalf("RevealToken = %q, %v", got, err)
		}
	})

	t.Run("update", func(t *testing.T) {
		ps, err := ta.Platforms.List()
		if err != nil || len(ps) != 1 {
			t.Fatalf("List = %+v, %v", ps, err)
		}
		in := PlatformInput{ID: ps[0].ID, Name: "Shop DE", Domain: ps[0].Domain, AgentURL: ps[0].AgentURL, Order: 3}
		p, err := ta.Platforms.Save(in)
		if err != nil || p.Name != "Shop DE" || p.Order != 3 {
			t.Fatalf("update = %+v, %v", p, err)
		}
	})

	t.Run("validation names the field", func(t *testing.T) {
		_, err := ta.Platforms.Save(PlatformInput{Name: "Blog", Domain: "blog.example", AgentURL: "ftp://blog.example"})
		appErr(t, err, CodeValidation, "agent_url")
		_, err = ta.Platforms.Save(PlatformInput{Name: "Shop DE", Domain: "other.example", AgentURL: "https://other.example"})
		appErr(t, err, CodeValidation, "name")
	})

	t.Run("update of a missing platform", func(t *testing.T) {
		_, err := ta.Platforms.Save(PlatformInput{ID: 999, Name: "X", Domain: "x.example", AgentURL: "https://x.example"})
		appErr(t, err, CodeNotFound, "")
	})
}

func TestPlatformService_SaveWithoutKeyring(t *testing.T) {
	ta := mustOpenApp(t, func(o *Options) { o.Secrets = unavailableSecrets{} })
	_, err := ta.Platforms.Save(PlatformInput{Name: "Shop", Domain: "shop.example", AgentURL: "https://shop.example"})
	e := appErr(t, err, CodeKeyringUnavailable, "")
	if !strings.Contains(e.Message, "gnome-keyring") {
		t.Errorf("message %q does not say what to install", e.Message)
	}
	if ps, err := ta.Platforms.List(); err != nil || len(ps) != 0 {
		t.Fatalf("a platform without a token was kept: %+v, %v", ps, err)
	}
}

func TestPlatformService_Delete(t *testing.T) {
	ta := mustOpenApp(t)
	ctx := context.Background()
	a := ta.mustPlatform(t, "Shop", "https://shop.example:7443")
	b := ta.mustPlatform(t, "Blog", "https://blog.example:7443")
	sy, err := ta.Syncs.Save(SyncInput{SourcePlatformID: a.ID, SourceModel: "posts", TargetPlatformID: b.ID,
		TargetModel: "posts", SyncAllFields: true, Interval: 60, Status: true})
	if err != nil {
		t.Fatal(err)
	}

	e := appErr(t, ta.Platforms.Delete(a.ID), CodeInUse, "")
	if !strings.Contains(e.Message, sy.Title) {
		t.Errorf("in_use message %q does not name the sync %q", e.Message, sy.Title)
	}
	if err := ta.Syncs.Delete(sy.ID); err != nil {
		t.Fatal(err)
	}
	if err := ta.Platforms.Delete(a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.secrets.Get(ctx, secrets.PlatformKey(a.ID)); err == nil {
		t.Error("the token of the deleted platform is still stored")
	}
	appErr(t, ta.Platforms.Delete(a.ID), CodeNotFound, "")
}

func TestPlatformService_Tokens(t *testing.T) {
	ta := mustOpenApp(t)
	ctx := context.Background()
	p := ta.mustPlatform(t, "Shop", "https://shop.example:7443")

	tok, err := ta.Platforms.GenerateToken()
	if err != nil || len(tok) != 43 {
		t.Fatalf("GenerateToken = %q, %v", tok, err)
	}
	appErr(t, ta.Platforms.SetToken(p.ID, "short"), CodeValidation, "token")
	appErr(t, ta.Platforms.SetToken(999, tok), CodeNotFound, "")

	rev, _ := ta.catalog.Revision(ctx)
	if err := ta.Platforms.SetToken(p.ID, tok); err != nil {
		t.Fatal(err)
	}
	if got, _ := ta.Platforms.RevealToken(p.ID); got != tok {
		t.Fatal("SetToken did not store the token")
	}
	if now, _ := ta.catalog.Revision(ctx); now != rev+1 {
		t.Errorf("revision %d after SetToken, want %d", now, rev+1)
	}

	t.Run("rotate before enrollment", func(t *testing.T) {
		if err := ta.Platforms.RotateToken(p.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := ta.Platforms.RevealToken(p.ID); got == tok || len(got) != 43 {
			t.Fatalf("token after rotation %q", got)
		}
	})

	t.Run("an enrolled agent keeps its token", func(t *testing.T) {
		if err := ta.catalog.MarkEnrolled(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		other, _ := ta.Platforms.GenerateToken()
		appErr(t, ta.Platforms.SetToken(p.ID, other), CodeConflict, "")
	})

	t.Run("missing token", func(t *testing.T) {
		if err := ta.secrets.Delete(ctx, secrets.PlatformKey(p.ID)); err != nil {
			t.Fatal(err)
		}
		if has, err := ta.Platforms.HasToken(p.ID); err != nil || has {
			t.Fatalf("HasToken = %v, %v", has, err)
		}
		appErr(t, func() error { _, err := ta.Platforms.RevealToken(p.ID); return err }(), CodeNotFound, "")
	})
}

// fakeResolver answers every look-up with its addresses.
type fakeResolver []netip.Addr

func (r fakeResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

func TestPlatformService_LookupIP(t *testing.T) {
	ta := mustOpenApp(t, func(o *Options) {
		o.Resolver = fakeResolver{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("203.0.113.7")}
	})
	if ip, err := ta.Platforms.LookupIP("shop.example"); err != nil || ip != "203.0.113.7" {
		t.Fatalf("LookupIP = %q, %v", ip, err)
	}
	none := mustOpenApp(t, func(o *Options) { o.Resolver = fakeResolver{} })
	_, err := none.Platforms.LookupIP("shop.example")
	appErr(t, err, CodeValidation, "domain")
}

func TestPlatformService_ProbeAndAccept(t *testing.T) {
	ta := mustOpenApp(t)
	syncToken := ta.mustSyncToken(t)
	ag := startAgent(t, syncToken, `CREATE TABLE posts (id INTEGER PRIMARY KEY, ulid TEXT UNIQUE, title TEXT)`)

	res, err := ta.Platforms.Probe(ag.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if res.Fingerprint != ag.Fingerprint || res.Enrolled || res.PlatformID != nil || res.Version == "" {
		t.Fatalf("Probe = %+v, want fingerprint %s", res, ag.Fingerprint)
	}
	_, err = ta.Platforms.Probe("shop.example")
	appErr(t, err, CodeValidation, "agent_url")
	_, err = ta.Platforms.Probe("https://127.0.0.1:1")
	appErr(t, err, CodeUnreachable, "")

	p := ta.mustPlatform(t, "Shop", ag.URL)
	appErr(t, ta.Platforms.AcceptFingerprint(p.ID, "sha256:nothex"), CodeValidation, "tls_fingerprint")
	if err := ta.Platforms.AcceptFingerprint(p.ID, res.Fingerprint); err != nil {
		t.Fatal(err)
	}
	if err := ta.Platforms.AcceptFingerprint(p.ID, res.Fingerprint); err != nil {
		t.Fatalf("accepting the pinned fingerprint again: %v", err)
	}
	other := "sha256:" + strings.Repeat("ab", 32)
	appErr(t, ta.Platforms.AcceptFingerprint(p.ID, other), CodeConflict, "")
	ps, _ := ta.Platforms.List()
	if ps[0].TLSFingerprint == nil || *ps[0].TLSFingerprint != ag.Fingerprint {
		t.Fatalf("pinned %v, want %s", ps[0].TLSFingerprint, ag.Fingerprint)
	}
}

func TestPlatformService_RotateEnrolled(t *testing.T) {
	ta := mustOpenApp(t)
	ctx := context.Background()
	syncToken := ta.mustSyncToken(t)
	ag := startAgent(t, syncToken, `CREATE TABLE posts (id INTEGER PRIMARY KEY, ulid TEXT UNIQUE, title TEXT)`)
	p := ta.mustPlatform(t, "Shop", ag.URL)
	if rep, err := ta.Fleet.SyncPlatforms(); err != nil || rep.Results[0].Result != ResultOK {
		t.Fatalf("SyncPlatforms = %+v, %v", rep, err)
	}
	before, _ := ta.Platforms.RevealToken(p.ID)
	err := ta.Platforms.RotateToken(p.ID)
	after, _ := ta.Platforms.RevealToken(p.ID)
	if err != nil {
		// The agent refused the new token (an agent without POST /api/token): the old one
		// must stay, with nothing left pending.
		var e *Error
		if !errors.As(err, &e) || e.Code == CodeInternal {
			t.Fatalf("RotateToken = %v", err)
		}
		if after != before {
			t.Fatal("a refused rotation changed the stored token")
		}
		if _, perr := ta.secrets.Get(ctx, fleet.PendingTokenKey(p.ID)); perr == nil {
			t.Fatal("a refused rotation left a pending token")
		}
		return
	}
	if after == before {
		t.Fatal("the rotation kept the old token")
	}
}
