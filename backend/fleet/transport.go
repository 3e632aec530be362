package fleet

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// Defaults of a Client.
const (
	// defaultTimeout bounds one call to an agent, retries included.
	defaultTimeout = 30 * time.Second
	// defaultRetries is how many times an idempotent call is tried again after a network
	// error or a 502/503/504 answer.
	defaultRetries = 2
	// defaultRetryWait is the first wait between two attempts; it doubles with jitter.
	defaultRetryWait = 100 * time.Millisecond
	// maxResponseBody bounds what is read of an agent's answer.
	maxResponseBody = protocol.DefaultBodyLimit
)

// userAgent identifies the control center to agents.
const userAgent = "mooxsync-control/" + protocol.Version

// ErrUnreachable matches errors of calls that got no HTTP answer from the agent: connection
// refused, DNS failure, timeout, TLS handshake failure other than a changed fingerprint.
var ErrUnreachable = errors.New("agent unreachable")

// ErrBadResponse matches errors of calls whose answer could not be understood.
var ErrBadResponse = errors.New("bad answer from agent")

// IsUnreachable reports whether err means the agent could not be reached.
func IsUnreachable(err error) bool { return errors.Is(err, ErrUnreachable) }

// request is one call to an agent.
type request struct {
	method string
	// uri is the path plus ?query, exactly as it is sent and signed.
	uri string
	// key signs the request (control plane); nil sends it unsigned (GET /api/health).
	key []byte
	// body is the raw JSON body; nil sends none.
	body []byte
	// retry allows further attempts after a network error or a 502/503/504 answer, each
	// one signed afresh with a new message id.
	retry bool
}

// signing travels in a request's context to the pre-request hook, which signs every attempt.
type signing struct {
	key  []byte
	body []byte
}

type signingKey struct{}

// rawClient sends signed requests to one agent and decodes answers and error envelopes.
type rawClient struct {
	base      string
	rc        *resty.Client
	transport *http.Transport
	timeout   time.Duration
	signer    protocol.Signer
}

func newRawClient(base string, tlsConfig *tls.Config, timeout time.Duration, retries int, retryWait time.Duration) *rawClient {
	transport := newTransport(tlsConfig)
	c := &rawClient{base: base, transport: transport, timeout: timeout}
	c.rc = resty.NewWithClient(&http.Client{Transport: transport}).
		SetLogger(discardLogger{}).
		SetRedirectPolicy(resty.RedirectPolicyFunc(func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		})).
		SetRetryCount(retries).
		SetRetryWaitTime(retryWait).
		SetRetryMaxWaitTime(max(retryWait*8, retryWait)).
		SetResponseBodyLimit(maxResponseBody).
		SetHeader("User-Agent", userAgent).
		SetHeader("Accept", "application/json").
		SetPreRequestHook(c.sign)
	return c
}

// sign runs before every attempt, on the request exactly as it goes on the wire: a fresh
// message id and timestamp, the method and the request URI as sent.
func (c *rawClient) sign(_ *resty.Client, r *http.Request) error {
	s, _ := r.Context().Value(signingKey{}).(*signing)
	if s == nil {
		return nil
	}
	c.signer.SignControl(r.Method, r.URL.RequestURI(), s.body, s.key).Set(r.Header)
	return nil
}

// call sends req and decodes a 2xx answer into out (unless out is nil or the body empty).
// Error answers become *protocol.Error; a changed certificate a *FingerprintMismatchError;
// no answer at all an error matching ErrUnreachable.
func (c *rawClient) call(ctx context.Context, req request, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if req.key != nil {
		ctx = context.WithValue(ctx, signingKey{}, &signing{key: req.key, body: req.body})
	}
	r := c.rc.R().SetContext(ctx)
	if req.body != nil {
		r.SetHeader("Content-Type", "application/json").SetBody(req.body)
	}
	if req.retry {
		r.AddRetryCondition(retryable)
	} else {
		r.AddRetryCondition(func(*resty.Response, error) bool { return false })
	}
	resp, err := r.Execute(req.method, c.base+req.uri)
	if err != nil {
		return classify(ctx, req, err)
	}
	status := resp.StatusCode()
	body := resp.Body()
	if status < 200 || status > 299 {
		return protocol.DecodeError(status, body)
	}
	if out == nil || len(body) == 0 {
		return nil
	}
	if d, ok := out.(bodyDecoder); ok {
		if err := d.decodeBody(body); err != nil {
			return fmt.Errorf("%w: %s %s: %v", ErrBadResponse, req.method, req.uri, err)
		}
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrBadResponse, req.method, req.uri, err)
	}
	return nil
}

// bodyDecoder is an answer type that decodes itself from the raw body, when decoding it
// all with encoding/json would cost too much.
type bodyDecoder interface {
	decodeBody(b []byte) error
}

// classify turns a transport error into the package's errors.
func classify(ctx context.Context, req request, err error) error {
	var fm *FingerprintMismatchError
	if errors.As(err, &fm) {
		return fm
	}
	if errors.Is(err, ErrNoCertificate) {
		return ErrNoCertificate
	}
	if errors.Is(err, resty.ErrResponseBodyTooLarge) {
		return fmt.Errorf("%w: %s %s: answer over %d bytes", ErrBadResponse, req.method, req.uri, maxResponseBody)
	}
	if errors.Is(context.Cause(ctx), context.Canceled) {
		return fmt.Errorf("%s %s: %w", req.method, req.uri, context.Canceled)
	}
	return fmt.Errorf("%w: %s %s: %w", ErrUnreachable, req.method, req.uri, stripURL(err))
}

// stripURL drops the *url.Error wrapper, whose text repeats the method and URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryable decides whether an idempotent call is tried again.
func retryable(resp *resty.Response, err error) bool {
	if err != nil {
		var fm *FingerprintMismatchError
		return !errors.As(err, &fm) && !errors.Is(err, ErrNoCertificate) &&
			!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) &&
			!errors.Is(err, resty.ErrResponseBodyTooLarge)
	}
	switch resp.StatusCode() {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (c *rawClient) close() { c.transport.CloseIdleConnections() }

// parseAgentURL checks an agent's base URL (http or https, a host, no path, query or
// credentials) and returns it without a trailing slash, and whether it uses TLS.
func parseAgentURL(raw string) (base string, tlsURL bool, err error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", false, errors.New("agent URL is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", false, fmt.Errorf("agent URL %q: scheme must be http or https", raw)
	case u.Host == "":
		return "", false, fmt.Errorf("agent URL %q: no host", raw)
	case u.User != nil:
		return "", false, errors.New("agent URL must not carry credentials")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return "", false, fmt.Errorf("agent URL %q: must not have a path, query or fragment", raw)
	}
	return u.Scheme + "://" + u.Host, u.Scheme == "https", nil
}

// discardLogger silences resty: the client reports through its errors only, so nothing
// about a request (headers included) can reach a log.
type discardLogger struct{}

func (discardLogger) Errorf(string, ...any) {}
func (discardLogger) Warnf(string, ...any)  {}
func (discardLogger) Debugf(string, ...any) {}
