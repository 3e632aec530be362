package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

func ptr[T any](v T) *T { return &v }

func validPlatform() catalog.Platform {
	return catalog.Platform{Name: "Shop", Domain: "shop.example", AgentURL: "https://shop.example:7443", ShowInMenu: true}
}

// wantField fails unless err is a *ValidationError on field that matches sentinel.
func wantField(tb testing.TB, err error, field string, sentinel error) {
	tb.Helper()
	var ve *catalog.ValidationError
	if !errors.As(err, &ve) {
		tb.Fatalf("err = %v, want *ValidationError on %s", err, field)
	}
	if ve.Field != field {
		tb.Fatalf("ValidationError on %q (%s), want %q", ve.Field, ve.Message, field)
	}
	if !errors.Is(err, sentinel) {
		tb.Fatalf("err %v does not match %v", err, sentinel)
	}
}

func TestStore_CreatePlatform(t *testing.T) {
	ctx := context.Background()

	t.Run("StoresAndNormalizes", func(t *testing.T) {
		s := MustOpen(t)
		in := catalog.Platform{
			Name: "  Shop ", Domain: " Shop.Example. ", IPAddress: ptr(" 203.0.113.7 "), Thumbnail: ptr(""),
			Master: true, Locked: true, LockReason: ptr(" maintenance "), ShowInMenu: true, Order: 3, ReadOnly: true,
			AgentURL: "HTTPS://Shop.Example:7443/", ID: 99, TLSFingerprint: ptr("sha256:ignored"), AckedRevision: 7,
		}
		p, err := s.CreatePlatform(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want := catalog.Platform{
			ID: 1, Name: "Shop", Domain: "shop.example", IPAddress: ptr("203.0.113.7"), Master: true, Locked: true,
			LockReason: ptr("maintenance"), ShowInMenu: true, Order: 3, ReadOnly: true, AgentURL: "https://shop.example:7443",
			CreatedAt: p.CreatedAt, UpdatedAt: p.CreatedAt,
		}
		if !jsonEqual(t, p, want) {
			t.Fatalf("created platform\n got %s\nwant %s", mustJSON(t, p), mustJSON(t, want))
		}
		if p.CreatedAt.IsZero() || p.Enrolled() {
			t.Fatalf("created_at %v, enrolled %v", p.CreatedAt, p.Enrolled())
		}
		got, err := s.Platform(ctx, p.ID)
		if err != nil || !jsonEqual(t, got, p) {
			t.Fatalf("Platform(%d) = %s, %v", p.ID, mustJSON(t, got), err)
		}
		if rev := mustRevision(t, s); rev != 1 {
			t.Fatalf("revision = %d, want 1", rev)
		}
	})

	t.Run("LockReasonDroppedWhenUnlocked", func(t *testing.T) {
		s := MustOpen(t)
		in := validPlatform()
		in.LockReason = ptr("stale")
		p, err := s.CreatePlatform(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if p.LockReason != nil {
			t.Fatalf("lock_reason = %q, want nil for an unlocked platform", *p.LockReason)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		tests := []struct {
			name  string
			edit  func(p *catalog.Platform)
			field string
		}{
			{"NoName", func(p *catalog.Platform) { p.Name = "  " }, "name"},
			{"LongName", func(p *catalog.Platform) { p.Name = strings.Repeat("x", 256) }, "name"},
			{"ControlInName", func(p *catalog.Platform) { p.Name = "a\nb" }, "name"},
			{"NoDomain", func(p *catalog.Platform) { p.Domain = "" }, "domain"},
			{"DomainWithScheme", func(p *catalog.Platform) { p.Domain = "https://shop.example" }, "domain"},
			{"DomainWithPath", func(p *catalog.Platform) { p.Domain = "shop.example/x" }, "domain"},
			{"DomainWithPort", func(p *catalog.Platform) { p.Domain = "shop.example:80" }, "domain"},
			{"DomainUnderscore", func(p *catalog.Platform) { p.Domain = "shop_1.example" }, "domain"},
			{"DomainLeadingHyphen", func(p *catalog.Platform) { p.Domain = "-shop.example" }, "domain"},
			{"DomainEmptyLabel", func(p *catalog.Platform) { p.Domain = "shop..example" }, "domain"},
			{"DomainLongLabel", func(p *catalog.Platform) { p.Domain = strings.Repeat("a", 64) + ".example" }, "domain"},
			{"DomainUnicode", func(p *catalog.Platform) { p.Domain = "bücher.example" }, "domain"},
			{"DomainSpace", func(p *catalog.Platform) { p.Domain = "shop example" }, "domain"},
			{"BadIP", func(p *catalog.Platform) { p.IPAddress = ptr("300.1.1.1") }, "ip_address"},
			{"NoAgentURL", func(p *catalog.Platform) { p.AgentURL = "" }, "agent_url"},
			{"AgentURLFTP", func(p *catalog.Platform) { p.AgentURL = "ftp://shop.example" }, "agent_url"},
			{"AgentURLNoScheme", func(p *catalog.Platform) { p.AgentURL = "shop.example:7443" }, "agent_url"},
			{"AgentURLNoHost", func(p *catalog.Platform) { p.AgentURL = "https://" }, "agent_url"},
			{"AgentURLUserinfo", func(p *catalog.Platform) { p.AgentURL = "https://admin:pw@shop.example" }, "agent_url"},
			{"AgentURLQuery", func(p *catalog.Platform) { p.AgentURL = "https://shop.example/?x=1" }, "agent_url"},
			{"AgentURLFragment", func(p *catalog.Platform) { p.AgentURL = "https://shop.example/#x" }, "agent_url"},
			{"AgentURLBadPort", func(p *catalog.Platform) { p.AgentURL = "https://shop.example:99999" }, "agent_url"},
			{"NegativeOrder", func(p *catalog.Platform) { p.Order = -1 }, "order"},
			{"LongLockReason", func(p *catalog.Platform) { p.Locked, p.LockReason = true, ptr(strings.Repeat("x", 1001)) }, "lock_reason"},
		}
		s := MustOpen(t)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := validPlatform()
				tt.edit(&p)
				_, err := s.CreatePlatform(ctx, p)
				wantField(t, err, tt.field, catalog.ErrInvalid)
			})
		}
		if rev := mustRevision(t, s); rev != 0 {
			t.Fatalf("refused creates bumped the revision to %d", rev)
		}
	})

	t.Run("Valid", func(t *testing.T) {
		tests := []struct {
			name           string
			domain, url    string
			wantD, wantURL string
		}{
			{"SingleLabel", "localhost", "http://127.0.0.1:7443", "localhost", "http://127.0.0.1:7443"},
			{"IPv4Domain", "192.0.2.1", "https://192.0.2.1", "192.0.2.1", "https://192.0.2.1"},
			{"IPv6Domain", "2001:DB8::1", "https://[2001:db8::1]:7443", "2001:db8::1", "https://[2001:db8::1]:7443"},
			{"Punycode", "xn--bcher-kva.example", "https://xn--bcher-kva.example", "xn--bcher-kva.example", "https://xn--bcher-kva.example"},
			{"URLWithPath", "proxied.example", "https://Gateway.example/mooxsync/shop/", "proxied.example", "https://gateway.example/mooxsync/shop"},
		}
		s := MustOpen(t)
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, err := s.CreatePlatform(ctx, catalog.Platform{Name: tt.name + string(rune('a'+i)), Domain: tt.domain, AgentURL: tt.url})
				if err != nil {
					t.Fatal(err)
				}
				if p.Domain != tt.wantD || p.AgentURL != tt.wantURL {
					t.Fatalf("domain %q, agent_url %q; want %q, %q", p.Domain, p.AgentURL, tt.wantD, tt.wantURL)
				}
			})
		}
	})

	t.Run("Duplicates", func(t *testing.T) {
		s := MustOpen(t)
		MustCreatePlatform(t, s, "Shop")
		tests := []struct {
			name  string
			p     catalog.Platform
			field string
		}{
			{"NameIgnoringCase", catalog.Platform{Name: "SHOP", Domain: "other.example", AgentURL: "https://other.example"}, "name"},
			{"DomainIgnoringCase", catalog.Platform{Name: "Other", Domain: "SHOP.example", AgentURL: "https://other.example"}, "domain"},
			{"AgentURL", catalog.Platform{Name: "Other", Domain: "other.example", AgentURL: "https://SHOP.example:7443/"}, "agent_url"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreatePlatform(ctx, tt.p)
				wantField(t, err, tt.field, catalog.ErrConflict)
				if !strings.Contains(err.Error(), "#1 Shop") {
					t.Fatalf("error %q does not name the platform it collides with", err)
				}
			})
		}
	})

	t.Run("IDsNeverReused", func(t *testing.T) {
		s := MustOpen(t)
		a := MustCreatePlatform(t, s, "A")
		b := MustCreatePlatform(t, s, "B")
		if err := s.DeletePlatform(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		c := MustCreatePlatform(t, s, "C")
		if c.ID == b.ID || c.ID <= a.ID {
			t.Fatalf("ids a=%d b=%d c=%d: a deleted platform's id was reused", a.ID, b.ID, c.ID)
		}
	})
}

func TestStore_Platforms(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	list, err := s.Platforms(ctx)
	if err != nil || list == nil || len(list) != 0 {
		t.Fatalf("Platforms on empty catalog = %v, %v; want empty non-nil", list, err)
	}
	for _, in := range []catalog.Platform{
		{Name: "Zeta", Domain: "zeta.example", AgentURL: "https://zeta.example", Order: 1},
		{Name: "beta", Domain: "beta.example", AgentURL: "https://beta.example", Order: 2},
		{Name: "Alpha", Domain: "alpha.example", AgentURL: "https://alpha.example", Order: 2},
	} {
		if _, err := s.CreatePlatform(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	list, err = s.Platforms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "Zeta,Alpha,beta" {
		t.Fatalf("order = %s, want Zeta,Alpha,beta (by order, then name ignoring case)", got)
	}
	if _, err := s.Platform(ctx, 42); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Platform(42) err = %v, want ErrNotFound", err)
	}
}

func TestStore_UpdatePlatform(t *testing.T) {
	ctx := context.Background()

	t.Run("Updates", func(t *testing.T) {
		s := MustOpen(t)
		p := MustCreatePlatform(t, s, "Shop")
		p.Name, p.Locked, p.LockReason, p.Order = "Shop 2", true, ptr("moving"), 5
		got, err := s.UpdatePlatform(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Shop 2" || !got.Locked || *got.LockReason != "moving" || got.Order != 5 {
			t.Fatalf("updated = %+v", got)
		}
		if !got.UpdatedAt.After(got.CreatedAt) {
			t.Fatalf("updated_at %v not after created_at %v", got.UpdatedAt, got.CreatedAt)
		}
		if rev := mustRevision(t, s); rev != 2 {
			t.Fatalf("revision = %d, want 2", rev)
		}
	})

	t.Run("UnchangedWritesNothing", func(t *testing.T) {
		s := MustOpen(t)
		p := MustCreatePlatform(t, s, "Shop")
		in := p
		in.Name = " Shop " // normalizes to the stored value
		in.AgentURL += "/"
		got, err := s.UpdatePlatform(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if !got.UpdatedAt.Equal(p.UpdatedAt) {
			t.Fatalf("updated_at moved from %v to %v", p.UpdatedAt, got.UpdatedAt)
		}
		if rev := mustRevision(t, s); rev != 1 {
			t.Fatalf("revision = %d, want 1 (no change)", rev)
		}
	})

	t.Run("KeepsAgentFields", func(t *testing.T) {
		s := MustOpen(t)
		p := MustCreatePlatform(t, s, "Shop")
		fp := protocol.Fingerprint([]byte("cert"))
		if err := s.PinFingerprint(ctx, p.ID, fp); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAcked(ctx, p.ID, 2); err != nil {
			t.Fatal(err)
		}
		p.Name = "Renamed"
		p.TLSFingerprint, p.AckedRevision = nil, 0
		got, err := s.UpdatePlatform(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if got.TLSFingerprint == nil || *got.TLSFingerprint != fp || got.AckedRevision != 2 {
			t.Fatalf("update touched agent fields: fingerprint %v, acked %d", got.TLSFingerprint, got.AckedRevision)
		}
	})

	t.Run("DomainChangeRetitlesSyncs", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		sy := MustCreateSync(t, s, shop, blog, "posts")
		shop.Domain = "store.example"
		if _, err := s.UpdatePlatform(ctx, shop); err != nil {
			t.Fatal(err)
		}
		got, err := s.Sync(ctx, sy.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := "store.example (posts) to blog.example (posts)"; got.Title != want {
			t.Fatalf("title = %q, want %q", got.Title, want)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		missing := shop
		missing.ID = 99
		if _, err := s.UpdatePlatform(ctx, missing); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("update missing: err = %v, want ErrNotFound", err)
		}
		blog.Domain = "SHOP.EXAMPLE"
		_, err := s.UpdatePlatform(ctx, blog)
		wantField(t, err, "domain", catalog.ErrConflict)
		blog.Domain = "not a domain"
		_, err = s.UpdatePlatform(ctx, blog)
		wantField(t, err, "domain", catalog.ErrInvalid)
	})
}

func TestStore_DeletePlatform(t *testing.T) {
	ctx := context.Background()

	t.Run("InUse", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog, wiki := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog"), MustCreatePlatform(t, s, "Wiki")
		a := MustCreateSync(t, s, shop, blog, "posts")
		b := MustCreateSync(t, s, wiki, shop, "users")
		rev := mustRevision(t, s)
		err := s.DeletePlatform(ctx, shop.ID)
		if !errors.Is(err, catalog.ErrInUse) {
			t.Fatalf("err = %v, want ErrInUse", err)
		}
		var iu *catalog.InUseError
		if !errors.As(err, &iu) || len(iu.Syncs) != 2 || iu.Syncs[0].ID != a.ID || iu.Syncs[1].ID != b.ID {
			t.Fatalf("InUseError = %+v", iu)
		}
		for _, title := range []string{a.Title, b.Title} {
			if !strings.Contains(err.Error(), title) {
				t.Errorf("error %q does not name sync %q", err, title)
			}
		}
		if got := mustRevision(t, s); got != rev {
			t.Fatalf("refused delete bumped the revision")
		}
	})

	t.Run("DeletesWithHistory", func(t *testing.T) {
		s := MustOpen(t)
		shop, blog := MustCreatePlatform(t, s, "Shop"), MustCreatePlatform(t, s, "Blog")
		if _, err := s.RecordPush(ctx, catalog.Push{PlatformID: shop.ID, Revision: 1, Result: catalog.PushOK}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordStatus(ctx, catalog.AgentStatus{PlatformID: shop.ID, Error: ptr("down")}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePlatform(ctx, shop.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Platform(ctx, shop.ID); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("deleted platform still there: %v", err)
		}
		if _, err := s.LatestStatus(ctx, shop.ID); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("status of deleted platform: %v", err)
		}
		if act, err := s.Activity(ctx, 10); err != nil || len(act) != 0 {
			t.Fatalf("activity after delete = %+v, %v", act, err)
		}
		if rev := mustRevision(t, s); rev != 3 {
			t.Fatalf("revision = %d, want 3", rev)
		}
		if _, err := s.Platform(ctx, blog.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := MustOpen(t)
		if err := s.DeletePlatform(ctx, 7); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
}

func TestStore_PinFingerprint(t *testing.T) {
	ctx := context.Background()
	first, second := protocol.Fingerprint([]byte("cert 1")), protocol.Fingerprint([]byte("cert 2"))

	t.Run("TrustOnFirstUse", func(t *testing.T) {
		s := MustOpen(t)
		p := MustCreatePlatform(t, s, "Shop")
		if err := s.PinFingerprint(ctx, p.ID, strings.ToUpper(first)); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Platform(ctx, p.ID)
		if got.TLSFingerprint == nil || *got.TLSFingerprint != first || got.PendingFingerprint != nil {
			t.Fatalf("after first pin: %v / %v", got.TLSFingerprint, got.PendingFingerprint)
		}
		if rev := mustRevision(t, s); rev != 2 {
			t.Fatalf("revision = %d, want 2: peers carry the fingerprint", rev)
		}
		if err := s.PinFingerprint(ctx, p.ID, first); err != nil {
			t.Fatalf("same fingerprint again: %v", err)
		}
		if rev := mustRevision(t, s); rev != 2 {
			t.Fatalf("same fingerprint bumped the revision to %d", rev)
		}
	})

	t.Run("ChangedIsPendingUntilAccepted", func(t *testing.T) {
		s := MustOpen(t)
		p := MustCreatePlatform(t, s, "Shop")
		if err := s.PinFingerprint(ctx, p.ID, first); err != nil {
			t.Fatal(err)
		}
		err := s.PinFingerprint(ctx, p.ID, second)
		if !errors.Is(err, catalog.ErrFingerprintChanged) {
			t.Fatalf("changed fingerprint: err = %v, want ErrFingerprintChanged", err)
		}
		got, _ := s.Platform(ctx, p.ID)
		if *got.TLSFingerprint != first || got.PendingFingerprint == nil || *got.PendingFingerprint != second {
			t.Fatalf("pinned %v pending %v", got.TLSFingerprint, got.PendingFingerprint)
		}
		rev := mustRevision(t, s)

		if err := s.AcceptFingerprint(ctx, p.ID, first); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("accept a fingerprint other than the pending one: err = %v, want ErrConflict", err)
		}
		if err := s.AcceptFingerprint(ctx, p.ID, second); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Platform(ctx, p.ID)
		if *got.TLSFingerprint != second || got.PendingFingerprint != nil {
			t.Fatalf("after accept: pinned %v pending %v", got.TLSFingerprint, got.PendingFingerprint)
		}
		if after := mustRevision(t, s); after != rev+1 {
			t.Fatalf("accept: revision %d, want %d", after, rev+1)
		}
		if err := s.AcceptFingerprint(ctx, p.ID, second); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("accept with nothing pending: err = %v, want ErrConflict", err)
		}
	})

	t.Run("PinnedAgainClearsPending", func(t *testing.T) {
		s := MustOpen(t)
		p := MustCreatePlatform(t, s, "Shop")
		_ = s.PinFingerprint(ctx, p.ID, first)
		_ = s.PinFingerprint(ctx, p.ID, second)
		if err := s.PinFingerprint(ctx, p.ID, first); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Platform(ctx, p.ID); got.PendingFingerprint != nil {
			t.Fatalf("pending = %v, want cleared", *got.PendingFingerprint)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		s := MustOpen(t)
		p := MustCreatePlatform(t, s, "Shop")
		for _, fp := range []string{"", "sha256:", "sha1:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("g", 64), first + "0"} {
			wantField(t, s.PinFingerprint(ctx, p.ID, fp), "tls_fingerprint", catalog.ErrInvalid)
		}
		if err := s.PinFingerprint(ctx, 99, first); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("pin on missing platform: %v", err)
		}
		if err := s.AcceptFingerprint(ctx, 99, first); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("accept on missing platform: %v", err)
		}
	})
}

func TestStore_MarkEnrolled(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	p := MustCreatePlatform(t, s, "Shop")
	if err := s.MarkEnrolled(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	first, _ := s.Platform(ctx, p.ID)
	if !first.Enrolled() {
		t.Fatal("not enrolled after MarkEnrolled")
	}
	if err := s.MarkEnrolled(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	again, _ := s.Platform(ctx, p.ID)
	if !again.EnrolledAt.Equal(*first.EnrolledAt) {
		t.Fatalf("second MarkEnrolled moved enrolled_at from %v to %v", first.EnrolledAt, again.EnrolledAt)
	}
	if err := s.MarkEnrolled(ctx, 99); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("MarkEnrolled(99) = %v", err)
	}

	t.Run("Reset", func(t *testing.T) {
		_ = s.PinFingerprint(ctx, p.ID, protocol.Fingerprint([]byte("a")))
		_ = s.SetAcked(ctx, p.ID, 3)
		rev := mustRevision(t, s)
		if err := s.ResetEnrollment(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Platform(ctx, p.ID)
		if got.Enrolled() || got.TLSFingerprint != nil || got.PendingFingerprint != nil || got.AckedRevision != 0 {
			t.Fatalf("after reset: %+v", got)
		}
		if after := mustRevision(t, s); after != rev+1 {
			t.Fatalf("reset: revision %d, want %d", after, rev+1)
		}
	})
}

func TestStore_SetAcked(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	p := MustCreatePlatform(t, s, "Shop")
	for _, rev := range []int64{5, 2} { // the agent's word is the truth, even backwards
		if err := s.SetAcked(ctx, p.ID, rev); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Platform(ctx, p.ID); got.AckedRevision != rev {
			t.Fatalf("acked = %d, want %d", got.AckedRevision, rev)
		}
	}
	if rev := mustRevision(t, s); rev != 1 {
		t.Fatalf("SetAcked bumped the revision to %d", rev)
	}
	if err := s.SetAcked(ctx, 99, 1); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("SetAcked(99) = %v", err)
	}
	wantField(t, s.SetAcked(ctx, p.ID, -1), "acked_revision", catalog.ErrInvalid)
}

func TestPlatform_Protocol(t *testing.T) {
	p := catalog.Platform{ID: 1, Name: "Shop", Domain: "shop.example", IPAddress: ptr("203.0.113.7"), ShowInMenu: true,
		Order: 1, AgentURL: "https://shop.example:7443", TLSFingerprint: ptr("sha256:x"), AckedRevision: 4}
	got := mustJSON(t, p.Protocol())
	want := `{"id":1,"name":"Shop","domain":"shop.example","ip_address":"203.0.113.7","thumbnail":null,"master":false,` +
		`"locked":false,"lock_reason":null,"show_in_menu":true,"order":1,"read_only":false,"agent_url":"https://shop.example:7443"}`
	if got != want {
		t.Fatalf("protocol platform\n got %s\nwant %s", got, want)
	}
	*p.IPAddress = "changed"
	if pp := p.Protocol(); *pp.IPAddress != "changed" || pp.IPAddress == p.IPAddress {
		t.Fatal("Protocol must copy pointer fields")
	}
	if ref := p.Ref(); ref != (protocol.PlatformRef{ID: 1, Name: "Shop", Domain: "shop.example", AgentURL: "https://shop.example:7443"}) {
		t.Fatalf("Ref = %+v", ref)
	}
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func jsonEqual(tb testing.TB, a, b any) bool {
	tb.Helper()
	return mustJSON(tb, a) == mustJSON(tb, b)
}
