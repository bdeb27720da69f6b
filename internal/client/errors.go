package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// APIError is an error answer of the server. It unwraps to the *enroll.Error
// with the server's code and message, so errors.As and enroll.ErrorCode work
// on it; Status and RetryAfter carry the HTTP details.
type APIError struct {
	Status     int
	RetryAfter time.Duration // from Retry-After, on 429 and 503
	Err        *enroll.Error
	// Listener is the oma-server listener that answered ("admin" or
	// "public", api.HeaderListener), "" for anything else.
	Listener string
	// TLSOnly is set when the server answered a plain-HTTP request with
	// Go's "Client sent an HTTP request to an HTTPS server": the address
	// wants https:// (on an OMA, usually its public listener).
	TLSOnly bool
}

func (e *APIError) Error() string { return e.Err.Message }

func (e *APIError) Unwrap() error { return e.Err }

// NetworkError means the server could not be reached or the connection
// broke: the request may be retried (it may or may not have arrived).
type NetworkError struct {
	Op  string // e.g. "POST https://oma:443/api/v1/vma/enroll"
	Err error
	// Dial is true when no connection was made, so the request was not sent.
	Dial bool
}

func (e *NetworkError) Error() string { return fmt.Sprintf("%s: %v", e.Op, e.Err) }

func (e *NetworkError) Unwrap() error { return e.Err }

// ProtocolError is an answer that is not what the API promises (not JSON, an
// unexpected status): usually the wrong server or a proxy in the way.
type ProtocolError struct {
	Status int
	Err    error
}

func (e *ProtocolError) Error() string { return e.Err.Error() }

func (e *ProtocolError) Unwrap() error { return e.Err }

// IsPlainHTTP reports whether err is a TLS connection that found a plain
// HTTP server (an oma-server admin listener without --admin-tls, say).
func IsPlainHTTP(err error) bool {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/" {
		return true // a TLS handshake answered by an HTTP server
	}
	return err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// ListenerOf returns the oma-server listener ("admin", "public") that
// answered with the error err, or "".
func ListenerOf(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Listener
	}
	return ""
}

// IsNetwork reports whether err is a network failure worth retrying.
func IsNetwork(err error) bool {
	var ne *NetworkError
	return errors.As(err, &ne)
}

// IsRetryable reports whether a request that failed with err may simply be
// sent again later: network failures, 429, 502-504 and 503 "unavailable".
func IsRetryable(err error) bool {
	if IsNetwork(err) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
	}
	return false
}

// RetryAfter returns the server's Retry-After of err, or 0.
func RetryAfter(err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

// StatusCode returns the HTTP status of an API or protocol error, or 0.
func StatusCode(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.Status
	}
	return 0
}

// classify turns a transport failure into a NetworkError, keeping a
// fingerprint mismatch and context cancellation recognisable.
func classify(method, target string, err error) error {
	var fm *FingerprintMismatchError
	if errors.As(err, &fm) {
		return fm
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	ne := &NetworkError{Op: method + " " + target, Err: err}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		ne.Dial = true
	}
	return ne
}

// decodeError reads the {"error":{code,message}} envelope of a non-2xx
// answer; answers without it get a code from their status.
func decodeError(resp *resty.Response) error {
	status := resp.StatusCode()
	ae := &APIError{Status: status, RetryAfter: parseRetryAfter(resp.Header().Get("Retry-After")), Listener: resp.Header().Get(api.HeaderListener)}
	if status == http.StatusBadRequest && strings.Contains(string(resp.Body()), "Client sent an HTTP request to an HTTPS server") {
		ae.TLSOnly = true
		ae.Err = &enroll.Error{Code: enroll.CodeInvalidRequest, Message: "the server speaks HTTPS, not plain HTTP (HTTP 400: Client sent an HTTP request to an HTTPS server)"}
		return ae
	}
	var body api.ErrorBody
	if err := json.Unmarshal(resp.Body(), &body); err == nil && body.Error.Code != "" {
		ae.Err = &enroll.Error{Code: body.Error.Code, Message: body.Error.Message}
		if ae.Err.Message == "" {
			ae.Err.Message = string(body.Error.Code)
		}
		return ae
	}
	code := enroll.CodeInternal
	msg := fmt.Sprintf("unexpected answer from the server: HTTP %d", status)
	switch status {
	case http.StatusBadRequest:
		code = enroll.CodeInvalidRequest
	case http.StatusUnauthorized:
		code, msg = enroll.CodeUnauthorized, "unauthorized (HTTP 401)"
	case http.StatusForbidden:
		code, msg = enroll.CodePairingCodeRejected, "forbidden (HTTP 403)"
	case http.StatusNotFound:
		code, msg = enroll.CodeNotFound, "not found (HTTP 404): is this the right server address?"
	case http.StatusConflict:
		code = enroll.CodeWrongState
	case http.StatusMethodNotAllowed:
		code = enroll.CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		code = enroll.CodeBodyTooLarge
	case http.StatusTooManyRequests:
		code, msg = enroll.CodeRateLimited, "rate limited (HTTP 429): try again later"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		code, msg = enroll.CodeUnavailable, fmt.Sprintf("server unavailable (HTTP %d): try again shortly", status)
	}
	if status >= 300 && status < 400 {
		msg = fmt.Sprintf("the server answered with a redirect (HTTP %d to %q): use the address it points to", status, resp.Header().Get("Location"))
	}
	if snippet := strings.TrimSpace(enroll.Printable(string(resp.Body()))); snippet != "" && code == enroll.CodeInternal {
		msg += ": " + snippet
	}
	ae.Err = &enroll.Error{Code: code, Message: msg}
	return ae
}

func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
