package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// Platform is a platform of the fleet with the Moox Sync columns, plus what the control
// center knows about its agent. Create and Update take the editable fields (name, domain,
// ip_address, thumbnail, master, locked, lock_reason, show_in_menu, order, read_only,
// agent_url) and ignore the others, which the catalog and the fleet maintain.
type Platform struct {
	ID         int64   `json:"id"`
	Name       string  `json:"name"`
	Domain     string  `json:"domain"`
	IPAddress  *string `json:"ip_address"`
	Thumbnail  *string `json:"thumbnail"`
	Master     bool    `json:"master"`
	Locked     bool    `json:"locked"`
	LockReason *string `json:"lock_reason"`
	ShowInMenu bool    `json:"show_in_menu"`
	Order      int64   `json:"order"`
	ReadOnly   bool    `json:"read_only"`
	AgentURL   string  `json:"agent_url"`

	// TLSFingerprint is the pinned fingerprint of the agent's certificate ("sha256:…").
	TLSFingerprint *string `json:"tls_fingerprint"`
	// PendingFingerprint is a different fingerprint the agent presented, awaiting acceptance.
	PendingFingerprint *string `json:"pending_fingerprint"`
	// EnrolledAt is when the agent accepted its enrollment, nil before that.
	EnrolledAt *time.Time `json:"enrolled_at"`
	// AckedRevision is the desired-state revision the agent last acknowledged.
	AckedRevision int64 `json:"acked_revision"`

	CreatedAt time.Time `json:"created_at"`
	// UpdatedAt is when an admin last changed the editable fields.
	UpdatedAt time.Time `json:"updated_at"`
}

// Protocol returns the platform as agents know it (PROTOCOL.md section 6).
func (p Platform) Protocol() protocol.Platform {
	return protocol.Platform{
		ID:         p.ID,
		Name:       p.Name,
		Domain:     p.Domain,
		IPAddress:  cloneString(p.IPAddress),
		Thumbnail:  cloneString(p.Thumbnail),
		Master:     p.Master,
		Locked:     p.Locked,
		LockReason: cloneString(p.LockReason),
		ShowInMenu: p.ShowInMenu,
		Order:      p.Order,
		ReadOnly:   p.ReadOnly,
		AgentURL:   p.AgentURL,
	}
}

// Ref returns the reference that names the platform an agent serves in its desired state.
func (p Platform) Ref() protocol.PlatformRef {
	return protocol.PlatformRef{ID: p.ID, Name: p.Name, Domain: p.Domain, AgentURL: p.AgentURL}
}

// Enrolled reports whether the platform's agent has been enrolled.
func (p Platform) Enrolled() bool { return p.EnrolledAt != nil }

func cloneString(s *string) *string {
	if s == nil {
		return nil
	}
	v := *s
	return &v
}

// Limits of platform fields.
const (
	maxNameLen       = 255
	maxLockReasonLen = 1000
	maxThumbnailLen  = 1 << 20 // a data: URL of a small image fits
	maxURLLen        = 2048
)

var fingerprintRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// normalize canonicalises the editable fields and validates them in the order the platform
// form shows them. It needs no database; uniqueness is checked by the caller.
func (p *Platform) normalize() error {
	p.Name = strings.TrimSpace(p.Name)
	switch {
	case p.Name == "":
		return invalid("name", "name is required")
	case utf8.RuneCountInString(p.Name) > maxNameLen:
		return invalid("name", "name must be at most %d characters", maxNameLen)
	case hasControl(p.Name):
		return invalid("name", "name must not contain control characters")
	}

	d, err := normalizeDomain(p.Domain)
	if err != nil {
		return err
	}
	p.Domain = d

	p.IPAddress = trimmedOrNil(p.IPAddress)
	if p.IPAddress != nil {
		ip := net.ParseIP(*p.IPAddress)
		if ip == nil {
			return invalid("ip_address", "ip_address %q is not an IPv4 or IPv6 address", *p.IPAddress)
		}
		s := ip.String()
		p.IPAddress = &s
	}

	u, err := normalizeAgentURL(p.AgentURL)
	if err != nil {
		return err
	}
	p.AgentURL = u

	if p.Order < 0 {
		return invalid("order", "order must be 0 or more")
	}

	// A reason only means something while the platform is locked; an unlocked platform
	// carries none, so agents never show a stale one.
	p.LockReason = trimmedOrNil(p.LockReason)
	if !p.Locked {
		p.LockReason = nil
	}
	if p.LockReason != nil && utf8.RuneCountInString(*p.LockReason) > maxLockReasonLen {
		return invalid("lock_reason", "lock_reason must be at most %d characters", maxLockReasonLen)
	}

	p.Thumbnail = trimmedOrNil(p.Thumbnail)
	if p.Thumbnail != nil && len(*p.Thumbnail) > maxThumbnailLen {
		return invalid("thumbnail", "thumbnail must be at most %d bytes", maxThumbnailLen)
	}
	return nil
}

// normalizeDomain lower-cases a host name (or IP address) and checks its syntax.
func normalizeDomain(raw string) (string, error) {
	d := strings.ToLower(strings.TrimSpace(raw))
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", invalid("domain", "domain is required")
	}
	if strings.Contains(d, "://") || strings.ContainsAny(d, "/?#@") {
		return "", invalid("domain", "domain is a host name without scheme or path, e.g. shop.example")
	}
	if ip := net.ParseIP(d); ip != nil {
		return ip.String(), nil
	}
	if strings.Contains(d, ":") {
		return "", invalid("domain", "domain is a host name without port, e.g. shop.example")
	}
	for _, r := range d {
		if r > unicode.MaxASCII {
			return "", invalid("domain", "domain must be written in ASCII (use the punycode form xn--… of an international name)")
		}
	}
	if len(d) > 253 {
		return "", invalid("domain", "domain must be at most 253 characters")
	}
	for _, label := range strings.Split(d, ".") {
		if !validLabel(label) {
			return "", invalid("domain", "domain %q is not a valid host name: each dot-separated label has 1 to 63 letters, digits or hyphens and does not start or end with a hyphen", d)
		}
	}
	return d, nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// normalizeAgentURL checks an agent's base URL and returns it with a lower-case scheme and
// host and no trailing slash.
func normalizeAgentURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", invalid("agent_url", "agent_url is required, e.g. https://shop.example:7443")
	}
	if len(s) > maxURLLen {
		return "", invalid("agent_url", "agent_url must be at most %d characters", maxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", invalid("agent_url", "agent_url is not a URL, e.g. https://shop.example:7443")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", invalid("agent_url", "agent_url must be an http or https URL, e.g. https://shop.example:7443")
	case u.Host == "" || u.Hostname() == "":
		return "", invalid("agent_url", "agent_url must name a host, e.g. https://shop.example:7443")
	case u.User != nil:
		// Credentials in the URL would put a secret in the catalog.
		return "", invalid("agent_url", "agent_url must not contain a user name or password")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", invalid("agent_url", "agent_url must not have a query or fragment")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return "", invalid("agent_url", "agent_url has an invalid port %q", port)
		}
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// NormalizeFingerprint checks a TLS fingerprint ("sha256:" and 64 hex digits, as
// protocol.Fingerprint writes it) and returns it in lower case.
func NormalizeFingerprint(fp string) (string, error) {
	f := strings.ToLower(strings.TrimSpace(fp))
	if !fingerprintRE.MatchString(f) {
		return "", invalid("tls_fingerprint", "fingerprint must be \"sha256:\" followed by 64 hex digits")
	}
	return f, nil
}

func trimmedOrNil(s *string) *string {
	if s == nil {
		return nil
	}
	v := strings.TrimSpace(*s)
	if v == "" {
		return nil
	}
	return &v
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// platformColumns lists the columns scanPlatform reads, in order.
const platformColumns = `id, name, domain, ip_address, thumbnail, master, locked, lock_reason, show_in_menu,
	"order", read_only, agent_url, tls_fingerprint, pending_fingerprint, enrolled_at, acked_revision,
	created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanPlatform(row scanner) (Platform, error) {
	var (
		p                                        Platform
		ip, thumb, reason, fp, pending, enrolled sql.NullString
		created, updated                         string
	)
	err := row.Scan(&p.ID, &p.Name, &p.Domain, &ip, &thumb, &p.Master, &p.Locked, &reason, &p.ShowInMenu,
		&p.Order, &p.ReadOnly, &p.AgentURL, &fp, &pending, &enrolled, &p.AckedRevision, &created, &updated)
	if err != nil {
		return Platform{}, err
	}
	p.IPAddress, p.Thumbnail, p.LockReason = stringPtr(ip), stringPtr(thumb), stringPtr(reason)
	p.TLSFingerprint, p.PendingFingerprint = stringPtr(fp), stringPtr(pending)
	if p.EnrolledAt, err = parseTimePtr(enrolled); err != nil {
		return Platform{}, err
	}
	if p.CreatedAt, err = parseTime(created); err != nil {
		return Platform{}, err
	}
	if p.UpdatedAt, err = parseTime(updated); err != nil {
		return Platform{}, err
	}
	return p, nil
}

func getPlatform(ctx context.Context, q queryer, id int64) (Platform, error) {
	p, err := scanPlatform(q.QueryRowContext(ctx, `SELECT `+platformColumns+` FROM platforms WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Platform{}, fmt.Errorf("platform %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Platform{}, fmt.Errorf("get platform %d: %w", id, err)
	}
	return p, nil
}

func listPlatforms(ctx context.Context, q queryer) ([]Platform, error) {
	out, err := queryAll(ctx, q, scanPlatform, `SELECT `+platformColumns+` FROM platforms ORDER BY "order", name, id`)
	if err != nil {
		return nil, fmt.Errorf("list platforms: %w", err)
	}
	return out, nil
}

// Platforms returns every platform, ordered by order, then name.
func (s *Store) Platforms(ctx context.Context) ([]Platform, error) {
	return listPlatforms(ctx, s.db)
}

// Platform returns the platform with the given id, or ErrNotFound.
func (s *Store) Platform(ctx context.Context, id int64) (Platform, error) {
	return getPlatform(ctx, s.db, id)
}

// checkPlatformUnique returns a duplicate *ValidationError when another platform (not id)
// has the name, domain or agent URL of p. Names and domains compare case-insensitively.
func checkPlatformUnique(ctx context.Context, tx *sql.Tx, p Platform) error {
	checks := []struct{ field, column, value string }{
		{"name", "name", p.Name},
		{"domain", "domain", p.Domain},
		{"agent_url", "agent_url", p.AgentURL},
	}
	for _, c := range checks {
		var otherID int64
		var otherName string
		err := tx.QueryRowContext(ctx, `SELECT id, name FROM platforms WHERE `+c.column+` = ? AND id != ?`, c.value, p.ID).
			Scan(&otherID, &otherName)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("check unique %s: %w", c.field, err)
		}
		return duplicate(c.field, "%s %q is already used by platform #%d %s", c.field, c.value, otherID, otherName)
	}
	return nil
}

// CreatePlatform validates and stores a new platform and returns it as stored. The
// revision is bumped.
func (s *Store) CreatePlatform(ctx context.Context, p Platform) (Platform, error) {
	if err := p.normalize(); err != nil {
		return Platform{}, err
	}
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		p.ID = 0
		if err := checkPlatformUnique(ctx, tx, p); err != nil {
			return err
		}
		now := formatTime(s.now())
		res, err := tx.ExecContext(ctx, `INSERT INTO platforms
			(name, domain, ip_address, thumbnail, master, locked, lock_reason, show_in_menu, "order",
			 read_only, agent_url, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.Name, p.Domain, nullString(p.IPAddress), nullString(p.Thumbnail), p.Master, p.Locked,
			nullString(p.LockReason), p.ShowInMenu, p.Order, p.ReadOnly, p.AgentURL, now, now)
		if isUniqueViolation(err) {
			return fmt.Errorf("create platform: %w", ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create platform: %w", err)
		}
		if id, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("create platform: %w", err)
		}
		_, err = bumpRevision(ctx, tx)
		return err
	})
	if err != nil {
		return Platform{}, err
	}
	return s.Platform(ctx, id)
}

// platformEdit is the part of a platform an admin edits; equal values mean nothing changed.
type platformEdit struct {
	Name, Domain, AgentURL         string
	IPAddress, Thumbnail, Reason   string
	HasIP, HasThumb, HasReason     bool
	Master, Locked, Show, ReadOnly bool
	Order                          int64
}

func (p Platform) edit() platformEdit {
	e := platformEdit{Name: p.Name, Domain: p.Domain, AgentURL: p.AgentURL, Master: p.Master,
		Locked: p.Locked, Show: p.ShowInMenu, ReadOnly: p.ReadOnly, Order: p.Order}
	if p.IPAddress != nil {
		e.IPAddress, e.HasIP = *p.IPAddress, true
	}
	if p.Thumbnail != nil {
		e.Thumbnail, e.HasThumb = *p.Thumbnail, true
	}
	if p.LockReason != nil {
		e.Reason, e.HasReason = *p.LockReason, true
	}
	return e
}

// UpdatePlatform replaces the editable fields of platform p.ID and returns it as stored.
// When its domain changes, the titles of its syncs are generated anew. An update that
// changes nothing writes nothing and leaves the revision alone; any other bumps it.
func (s *Store) UpdatePlatform(ctx context.Context, p Platform) (Platform, error) {
	if err := p.normalize(); err != nil {
		return Platform{}, err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		old, err := getPlatform(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if old.edit() == p.edit() {
			return nil
		}
		if err := checkPlatformUnique(ctx, tx, p); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE platforms SET name = ?, domain = ?, ip_address = ?, thumbnail = ?,
			master = ?, locked = ?, lock_reason = ?, show_in_menu = ?, "order" = ?, read_only = ?, agent_url = ?,
			updated_at = ? WHERE id = ?`,
			p.Name, p.Domain, nullString(p.IPAddress), nullString(p.Thumbnail), p.Master, p.Locked,
			nullString(p.LockReason), p.ShowInMenu, p.Order, p.ReadOnly, p.AgentURL, formatTime(s.now()), p.ID)
		if isUniqueViolation(err) {
			return fmt.Errorf("update platform %d: %w", p.ID, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("update platform %d: %w", p.ID, err)
		}
		if old.Domain != p.Domain {
			if err := retitleSyncs(ctx, tx, p.ID); err != nil {
				return err
			}
		}
		_, err = bumpRevision(ctx, tx)
		return err
	})
	if err != nil {
		return Platform{}, err
	}
	return s.Platform(ctx, p.ID)
}

// DeletePlatform deletes a platform with its status snapshots and push history. A platform
// that syncs use cannot be deleted: the error is an *InUseError naming them. The revision
// is bumped. The platform's token in the keyring is the caller's to delete.
func (s *Store) DeletePlatform(ctx context.Context, id int64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := getPlatform(ctx, tx, id); err != nil {
			return err
		}
		using, err := listSyncs(ctx, tx, SyncFilter{PlatformID: id})
		if err != nil {
			return err
		}
		if len(using) > 0 {
			e := &InUseError{PlatformID: id}
			for _, sy := range using {
				e.Syncs = append(e.Syncs, SyncRef{ID: sy.ID, Title: sy.Title})
			}
			return e
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM platforms WHERE id = ?`, id); err != nil {
			if isForeignKeyViolation(err) {
				return fmt.Errorf("delete platform %d: %w", id, ErrInUse)
			}
			return fmt.Errorf("delete platform %d: %w", id, err)
		}
		_, err = bumpRevision(ctx, tx)
		return err
	})
}

// PinFingerprint records the TLS fingerprint an agent presented. With none pinned yet it is
// pinned (trust on first use) and the revision is bumped, since peers carry it. The pinned
// one again clears any pending fingerprint. A different one is kept as the pending
// fingerprint and ErrFingerprintChanged is returned: the connection must not be trusted
// until an admin calls AcceptFingerprint.
func (s *Store) PinFingerprint(ctx context.Context, platformID int64, fingerprint string) error {
	fp, err := NormalizeFingerprint(fingerprint)
	if err != nil {
		return err
	}
	var changed error
	err = s.write(ctx, func(tx *sql.Tx) error {
		p, err := getPlatform(ctx, tx, platformID)
		if err != nil {
			return err
		}
		switch {
		case p.TLSFingerprint == nil:
			if _, err := tx.ExecContext(ctx, `UPDATE platforms SET tls_fingerprint = ?, pending_fingerprint = NULL WHERE id = ?`,
				fp, platformID); err != nil {
				return fmt.Errorf("pin fingerprint: %w", err)
			}
			_, err = bumpRevision(ctx, tx)
			return err
		case *p.TLSFingerprint == fp:
			if p.PendingFingerprint == nil {
				return nil
			}
			if _, err := tx.ExecContext(ctx, `UPDATE platforms SET pending_fingerprint = NULL WHERE id = ?`, platformID); err != nil {
				return fmt.Errorf("pin fingerprint: %w", err)
			}
			return nil
		default:
			if _, err := tx.ExecContext(ctx, `UPDATE platforms SET pending_fingerprint = ? WHERE id = ?`, fp, platformID); err != nil {
				return fmt.Errorf("pin fingerprint: %w", err)
			}
			changed = fmt.Errorf("platform %d: %w: pinned %s, presented %s", platformID, ErrFingerprintChanged, *p.TLSFingerprint, fp)
			return nil
		}
	})
	if err != nil {
		return err
	}
	return changed
}

// AcceptFingerprint makes the pending fingerprint the pinned one, after an admin checked
// it. fingerprint must equal the pending one (what the admin was shown), else ErrConflict.
// The revision is bumped.
func (s *Store) AcceptFingerprint(ctx context.Context, platformID int64, fingerprint string) error {
	fp, err := NormalizeFingerprint(fingerprint)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		p, err := getPlatform(ctx, tx, platformID)
		if err != nil {
			return err
		}
		if p.PendingFingerprint == nil {
			return fmt.Errorf("platform %d has no pending fingerprint: %w", platformID, ErrConflict)
		}
		if *p.PendingFingerprint != fp {
			return fmt.Errorf("platform %d: pending fingerprint is %s, not %s: %w", platformID, *p.PendingFingerprint, fp, ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE platforms SET tls_fingerprint = ?, pending_fingerprint = NULL WHERE id = ?`,
			fp, platformID); err != nil {
			return fmt.Errorf("accept fingerprint: %w", err)
		}
		_, err = bumpRevision(ctx, tx)
		return err
	})
}

// MarkEnrolled records that the platform's agent accepted its enrollment. An agent already
// marked keeps its first enrollment time.
func (s *Store) MarkEnrolled(ctx context.Context, platformID int64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := getPlatform(ctx, tx, platformID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE platforms SET enrolled_at = COALESCE(enrolled_at, ?) WHERE id = ?`,
			formatTime(s.now()), platformID); err != nil {
			return fmt.Errorf("mark enrolled: %w", err)
		}
		return nil
	})
}

// ResetEnrollment forgets the platform's agent: enrollment time, pinned and pending
// fingerprints and acknowledged revision, so the next Sync Platforms enrolls it anew (after
// the agent was reinstalled, or its token rotated). The revision is bumped.
func (s *Store) ResetEnrollment(ctx context.Context, platformID int64) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := getPlatform(ctx, tx, platformID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE platforms SET enrolled_at = NULL, tls_fingerprint = NULL,
			pending_fingerprint = NULL, acked_revision = 0 WHERE id = ?`, platformID); err != nil {
			return fmt.Errorf("reset enrollment: %w", err)
		}
		_, err := bumpRevision(ctx, tx)
		return err
	})
}

// SetAcked records the desired-state revision the platform's agent has in force.
func (s *Store) SetAcked(ctx context.Context, platformID, revision int64) error {
	if revision < 0 {
		return invalid("acked_revision", "revision must be 0 or more")
	}
	res, err := s.db.ExecContext(ctx, `UPDATE platforms SET acked_revision = ? WHERE id = ?`, revision, platformID)
	if err != nil {
		return fmt.Errorf("set acked revision: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set acked revision: %w", err)
	} else if n == 0 {
		return fmt.Errorf("platform %d: %w", platformID, ErrNotFound)
	}
	return nil
}
