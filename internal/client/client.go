// Package client is the API client that omactl and vma-enroll share: one
// resty-based Client for both listeners, with admin bearer tokens, TLS pinned
// to the server's public key, and errors decoded back into *enroll.Error so
// that callers switch on the same codes the server sends.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// DefaultTimeout bounds one request (a long poll gets its wait on top).
const DefaultTimeout = 30 * time.Second

// maxResponseBytes caps an answer read into memory.
const maxResponseBytes = 16 << 20

// Config describes how to reach a server.
type Config struct {
	// BaseURL is the scheme, host and port, e.g. "https://oma.example:443"
	// or "http://127.0.0.1:8082".
	BaseURL string
	// Token is the admin bearer token (admin listener only).
	Token string
	// Fingerprint pins the server's TLS public key ("sha256:<hex>", as
	// omactl pairing-code prints it). It replaces the CA check.
	Fingerprint string
	// Insecure accepts any certificate. Ignored when Fingerprint is set.
	Insecure bool
	// Timeout bounds each request; DefaultTimeout when zero.
	Timeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
}

// Client calls the enrollment API. It is safe for concurrent use.
type Client struct {
	cfg Config
	r   *resty.Client
}

// New builds a client. The base URL must be http or https; a pin is only
// accepted with https.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server address %q is not a URL like https://host:port or http://127.0.0.1:8082", cfg.BaseURL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	pin := ""
	if cfg.Fingerprint != "" {
		if pin, err = NormalizeFingerprint(cfg.Fingerprint); err != nil {
			return nil, err
		}
		if u.Scheme != "https" {
			return nil, fmt.Errorf("a certificate fingerprint needs an https:// server address, not %q", cfg.BaseURL)
		}
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       TLSConfig(pin, cfg.Insecure),
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // long polls; the request context bounds it
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	}
	r := resty.NewWithClient(&http.Client{Transport: tr}).
		SetBaseURL(strings.TrimRight(cfg.BaseURL, "/")).
		// Never follow a redirect (it could carry the token elsewhere);
		// the 3xx answer itself becomes an error that names the target.
		SetRedirectPolicy(resty.RedirectPolicyFunc(func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		})).
		SetLogger(silentLogger{}).
		SetHeader("Accept", "application/json")
	if cfg.UserAgent != "" {
		r.SetHeader("User-Agent", cfg.UserAgent)
	}
	cfg.Fingerprint = pin
	return &Client{cfg: cfg, r: r}, nil
}

// BaseURL returns the server address the client talks to.
func (c *Client) BaseURL() string { return c.cfg.BaseURL }

// Close releases idle connections.
func (c *Client) Close() {
	if t, ok := c.r.GetClient().Transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
}

type silentLogger struct{}

func (silentLogger) Errorf(string, ...any) {}
func (silentLogger) Warnf(string, ...any)  {}
func (silentLogger) Debugf(string, ...any) {}

// errBodyTooLarge is an answer over maxResponseBytes.
var errBodyTooLarge = fmt.Errorf("the server's answer is over %d MiB", maxResponseBytes>>20)

// readBody reads and closes an answer's body, at most maxResponseBytes:
// into one buffer of the announced size when the server sent one, else
// through bytes.Buffer's growing reads.
func readBody(resp *http.Response) ([]byte, error) {
	if resp == nil || resp.Body == nil {
		return nil, nil
	}
	defer resp.Body.Close()
	if n := resp.ContentLength; n > maxResponseBytes {
		return nil, errBodyTooLarge
	} else if n >= 0 {
		b := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxResponseBytes+1)); err != nil {
		return nil, err
	}
	if buf.Len() > maxResponseBytes {
		return nil, errBodyTooLarge
	}
	return buf.Bytes(), nil
}

// call sends one request and decodes a 2xx JSON answer into out.
func (c *Client) call(ctx context.Context, method, path string, admin bool, extra time.Duration, configure func(*resty.Request), out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout+extra)
	defer cancel()
	req := c.r.R().SetContext(ctx)
	if admin && c.cfg.Token != "" {
		req.SetAuthToken(c.cfg.Token)
	}
	if configure != nil {
		configure(req)
	}
	// The body is read here, not by resty, which reads 512 bytes at a time
	// into a growing slice: the active list of ten thousand VMAs (4.7 MB)
	// spent a third of omactl's run there (bench row 5).
	req.SetDoNotParseResponse(true)
	resp, err := req.Execute(method, path)
	if err != nil {
		return classify(method, c.cfg.BaseURL+path, err)
	}
	body, err := readBody(resp.RawResponse)
	ok := !resp.IsError() && resp.StatusCode() >= 200 && resp.StatusCode() <= 299
	switch {
	case errors.Is(err, errBodyTooLarge) && ok:
		return &ProtocolError{Status: resp.StatusCode(), Err: fmt.Errorf("%s %s: %w", method, path, err)}
	case errors.Is(err, errBodyTooLarge):
		body = nil // a proxy's error page: the status says enough
	case err != nil:
		return classify(method, c.cfg.BaseURL+path, err)
	}
	resp.SetBody(body)
	if !ok {
		return decodeError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return &ProtocolError{Status: resp.StatusCode(), Err: fmt.Errorf("decode %s %s answer: %w", method, path, err)}
	}
	return nil
}

// Enroll sends the VMA's public key with a pairing code (public listener).
func (c *Client) Enroll(ctx context.Context, in api.EnrollRequest) (*api.EnrollResponse, error) {
	var out api.EnrollResponse
	err := c.call(ctx, http.MethodPost, api.PathEnroll, false, 0, func(r *resty.Request) { r.SetBody(in) }, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Verify sends the signed challenge (public listener).
func (c *Client) Verify(ctx context.Context, in api.VerifyRequest) (*api.VerifyResponse, error) {
	var out api.VerifyResponse
	err := c.call(ctx, http.MethodPost, api.PathVerify, false, 0, func(r *resty.Request) { r.SetBody(in) }, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Result asks for the outcome of an enrollment with its poll token. With
// wait > 0 it is a long poll: the server answers when the status changes or
// after wait (at most api.MaxWait).
func (c *Client) Result(ctx context.Context, enrollmentID, pollToken string, wait time.Duration) (*api.ResultResponse, error) {
	if wait > api.MaxWait {
		wait = api.MaxWait
	}
	var out api.ResultResponse
	err := c.call(ctx, http.MethodGet, api.PathResult, false, wait, func(r *resty.Request) {
		r.SetQueryParam("enrollment_id", enrollmentID)
		if wait > 0 {
			r.SetQueryParam("wait", formatWait(wait))
		}
		r.SetAuthToken(pollToken)
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func formatWait(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int(d/time.Second))
	}
	return d.String()
}

// Health calls GET /health on either listener.
func (c *Client) Health(ctx context.Context) (*api.HealthResponse, error) {
	var out api.HealthResponse
	if err := c.call(ctx, http.MethodGet, api.PathHealth, false, 0, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreatePairingCode makes a new single-use pairing code (admin).
func (c *Client) CreatePairingCode(ctx context.Context, in api.PairingCodeRequest) (*api.PairingCodeResponse, error) {
	var out api.PairingCodeResponse
	err := c.call(ctx, http.MethodPost, api.PathPairingCode, true, 0, func(r *resty.Request) { r.SetBody(in) }, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Pending lists the enrollments awaiting approval (admin).
func (c *Client) Pending(ctx context.Context) ([]api.Enrollment, error) {
	var out api.EnrollmentList
	if err := c.call(ctx, http.MethodGet, api.PathPending, true, 0, nil, &out); err != nil {
		return nil, err
	}
	return nonNil(out.Enrollments), nil
}

// EnrollmentFilter selects enrollments; empty fields match everything.
type EnrollmentFilter struct {
	Status   string
	VMAName  string
	IDPrefix string
	// Selector is a label selector (kubectl syntax), filtered by the server.
	Selector string
}

// Enrollments lists enrollments matching f (admin; used to resolve ids).
func (c *Client) Enrollments(ctx context.Context, f EnrollmentFilter) ([]api.Enrollment, error) {
	var out api.EnrollmentList
	err := c.call(ctx, http.MethodGet, api.PathEnrollments, true, 0, func(r *resty.Request) {
		setIf(r, "status", f.Status)
		setIf(r, "vma_name", f.VMAName)
		setIf(r, "id_prefix", f.IDPrefix)
		setIf(r, "selector", f.Selector)
	}, &out)
	if err != nil {
		return nil, err
	}
	return nonNil(out.Enrollments), nil
}

// Whoami returns the name of the admin token in use (admin).
func (c *Client) Whoami(ctx context.Context) (*api.WhoamiResponse, error) {
	var out api.WhoamiResponse
	if err := c.call(ctx, http.MethodGet, api.PathWhoami, true, 0, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Approve approves an enrollment by id (admin).
func (c *Client) Approve(ctx context.Context, id, notes string) (*api.Enrollment, error) {
	var out api.Enrollment
	err := c.call(ctx, http.MethodPost, api.PathApprove+url.PathEscape(id), true, 0, func(r *resty.Request) {
		r.SetBody(api.ApproveRequest{Notes: notes})
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Reject rejects an enrollment by id (admin).
func (c *Client) Reject(ctx context.Context, id, reason string) (*api.Enrollment, error) {
	var out api.Enrollment
	err := c.call(ctx, http.MethodPost, api.PathReject+url.PathEscape(id), true, 0, func(r *resty.Request) {
		r.SetBody(api.ReasonRequest{Reason: reason})
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Revoke revokes an approved enrollment by id (admin).
func (c *Client) Revoke(ctx context.Context, id, reason string) (*api.Enrollment, error) {
	var out api.Enrollment
	err := c.call(ctx, http.MethodDelete, api.PathRevoke+url.PathEscape(id), true, 0, func(r *resty.Request) {
		r.SetBody(api.ReasonRequest{Reason: reason})
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Active lists approved VMAs with their connection state (admin).
func (c *Client) Active(ctx context.Context) ([]api.Connection, error) {
	var out api.ConnectionList
	if err := c.call(ctx, http.MethodGet, api.PathActive, true, 0, nil, &out); err != nil {
		return nil, err
	}
	if out.Connections == nil {
		out.Connections = []api.Connection{}
	}
	return out.Connections, nil
}

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	Since, Until time.Time
	EventType    string
	EnrollmentID string
	VMAName      string
	Limit        int
	Cursor       string
	// Descending lists newest first.
	Descending bool
}

// Audit lists one page of audit events (admin).
func (c *Client) Audit(ctx context.Context, f AuditFilter) (*api.AuditList, error) {
	var out api.AuditList
	err := c.call(ctx, http.MethodGet, api.PathAudit, true, 0, func(r *resty.Request) {
		if !f.Since.IsZero() {
			r.SetQueryParam("since", f.Since.UTC().Format(time.RFC3339))
		}
		if !f.Until.IsZero() {
			r.SetQueryParam("until", f.Until.UTC().Format(time.RFC3339))
		}
		setIf(r, "event_type", f.EventType)
		setIf(r, "enrollment_id", f.EnrollmentID)
		setIf(r, "vma_name", f.VMAName)
		if f.Limit > 0 {
			r.SetQueryParam("limit", fmt.Sprint(f.Limit))
		}
		setIf(r, "cursor", f.Cursor)
		if f.Descending {
			r.SetQueryParam("order", "desc")
		}
	}, &out)
	if err != nil {
		return nil, err
	}
	if out.Events == nil {
		out.Events = []api.AuditEvent{}
	}
	return &out, nil
}

// AuditVerify checks the audit chain on the server (admin).
func (c *Client) AuditVerify(ctx context.Context) (*api.ChainReport, error) {
	var out api.ChainReport
	if err := c.call(ctx, http.MethodGet, api.PathAuditVerify, true, 0, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func setIf(r *resty.Request, k, v string) {
	if v != "" {
		r.SetQueryParam(k, v)
	}
}

func nonNil(e []api.Enrollment) []api.Enrollment {
	if e == nil {
		return []api.Enrollment{}
	}
	return e
}
