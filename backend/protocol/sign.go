package protocol

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Header names (Standard Webhooks v1, plus the sender's platform on the data plane).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
	HeaderPlatform  = "x-mooxsync-platform"
)

// Tolerance is the largest accepted distance between a request's timestamp and now.
const Tolerance = 300 * time.Second

// ReplayWindow is how long a control-plane message id is remembered.
const ReplayWindow = 10 * time.Minute

// MaxIDLength is the longest webhook-id accepted.
const MaxIDLength = 64

// DataContent is the signed content of a data-plane request: "{id}.{timestamp}.{body}".
func DataContent(id string, ts int64, body []byte) []byte {
	b := make([]byte, 0, len(id)+len(body)+24)
	b = append(b, id...)
	b = append(b, '.')
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, '.')
	return append(b, body...)
}

// ControlContent is the signed content of a control-plane request:
// "{id}.{timestamp}.{METHOD}.{request_uri}.{body}".
func ControlContent(id string, ts int64, method, requestURI string, body []byte) []byte {
	b := make([]byte, 0, len(id)+len(method)+len(requestURI)+len(body)+26)
	b = append(b, id...)
	b = append(b, '.')
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, '.')
	b = append(b, strings.ToUpper(method)...)
	b = append(b, '.')
	b = append(b, requestURI...)
	b = append(b, '.')
	return append(b, body...)
}

// Signature returns one signature entry "v1,<base64 HMAC-SHA256(key, content)>".
func Signature(key, content []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(content)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// ValidID reports whether id is 1-64 characters of [A-Za-z0-9_-].
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ParseSignatureHeader splits a webhook-signature header into the raw signatures of its v1
// entries. Entries of other versions are ignored; an empty header, an entry without a comma or
// a v1 entry that is not padded standard base64 of 32 bytes is an error.
func ParseSignatureHeader(h string) ([][]byte, error) {
	fields := strings.Fields(h)
	if len(fields) == 0 {
		return nil, Errorf(CodeUnauthorized, "missing webhook-signature")
	}
	sigs := make([][]byte, 0, len(fields))
	for _, f := range fields {
		version, sig, ok := strings.Cut(f, ",")
		if !ok {
			return nil, Errorf(CodeUnauthorized, "malformed webhook-signature: entry without a comma")
		}
		if version != "v1" {
			continue
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(sig)
		if err != nil || len(raw) != sha256.Size {
			return nil, Errorf(CodeUnauthorized, "malformed webhook-signature: bad base64")
		}
		sigs = append(sigs, raw)
	}
	if len(sigs) == 0 {
		return nil, Errorf(CodeUnauthorized, "webhook-signature has no v1 entry")
	}
	return sigs, nil
}

// Headers are the signing headers of one request.
type Headers struct {
	ID        string
	Timestamp string
	Signature string
}

// HeadersFrom reads the signing headers of a request.
func HeadersFrom(h http.Header) Headers {
	return Headers{ID: h.Get(HeaderID), Timestamp: h.Get(HeaderTimestamp), Signature: h.Get(HeaderSignature)}
}

// Set writes the signing headers into h.
func (s Headers) Set(h http.Header) {
	h.Set(HeaderID, s.ID)
	h.Set(HeaderTimestamp, s.Timestamp)
	h.Set(HeaderSignature, s.Signature)
}

// Signer signs outgoing requests. The zero value uses the wall clock and ULID ids.
type Signer struct {
	Now   func() time.Time
	NewID func() string
}

func (s Signer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// MessageID returns a fresh message id.
func (s Signer) MessageID() string {
	if s.NewID != nil {
		return s.NewID()
	}
	return NewULID()
}

// SignData signs a data-plane body under the given batch id. keys holds one or more keys;
// each adds a v1 entry (rotation).
func (s Signer) SignData(id string, body []byte, keys ...[]byte) Headers {
	ts := s.now().Unix()
	return sign(id, ts, DataContent(id, ts, body), keys)
}

// SignControl signs a control-plane request with a fresh message id.
func (s Signer) SignControl(method, requestURI string, body []byte, keys ...[]byte) Headers {
	id := s.MessageID()
	ts := s.now().Unix()
	return sign(id, ts, ControlContent(id, ts, method, requestURI, body), keys)
}

func sign(id string, ts int64, content []byte, keys [][]byte) Headers {
	entries := make([]string, len(keys))
	for i, k := range keys {
		entries[i] = Signature(k, content)
	}
	return Headers{ID: id, Timestamp: strconv.FormatInt(ts, 10), Signature: strings.Join(entries, " ")}
}

// Verifier checks signed requests. The zero value uses the wall clock.
type Verifier struct {
	Now func() time.Time
}

// VerifyData checks a data-plane request against any of keys.
func (v Verifier) VerifyData(h Headers, body []byte, keys ...[]byte) error {
	ts, err := v.checkEnvelope(h)
	if err != nil {
		return err
	}
	return verifySignatures(h.Signature, DataContent(h.ID, ts, body), keys)
}

// VerifyControl checks a control-plane request against any of keys.
func (v Verifier) VerifyControl(h Headers, method, requestURI string, body []byte, keys ...[]byte) error {
	ts, err := v.checkEnvelope(h)
	if err != nil {
		return err
	}
	return verifySignatures(h.Signature, ControlContent(h.ID, ts, method, requestURI, body), keys)
}

func (v Verifier) checkEnvelope(h Headers) (int64, error) {
	if !ValidID(h.ID) {
		return 0, Errorf(CodeUnauthorized, "missing or malformed webhook-id")
	}
	ts, err := strconv.ParseInt(h.Timestamp, 10, 64)
	if err != nil {
		return 0, Errorf(CodeUnauthorized, "missing or malformed webhook-timestamp")
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	d := now().Unix() - ts
	if d > int64(Tolerance/time.Second) || d < -int64(Tolerance/time.Second) {
		return 0, Errorf(CodeStaleTimestamp, "webhook-timestamp outside the %d s window", int64(Tolerance/time.Second))
	}
	return ts, nil
}

func verifySignatures(header string, content []byte, keys [][]byte) error {
	sigs, err := ParseSignatureHeader(header)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if len(k) == 0 {
			continue
		}
		m := hmac.New(sha256.New, k)
		m.Write(content)
		want := m.Sum(nil)
		for _, s := range sigs {
			if hmac.Equal(want, s) {
				return nil
			}
		}
	}
	return Errorf(CodeUnauthorized, "signature does not match")
}

// NewULID returns a new ULID string (26 characters, valid as a webhook-id and a batch id).
func NewULID() string {
	return ulid.MustNew(ulid.Timestamp(time.Now()), rand.Reader).String()
}
