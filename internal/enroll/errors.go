package enroll

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code. The API maps each code to
// an HTTP status; the CLIs map them to exit codes. Codes are a contract.
type Code string

// The error codes of the domain.
const (
	CodeInvalidRequest      Code = "invalid_request"       // bad input (400)
	CodeInvalidPublicKey    Code = "invalid_public_key"    // key not an ssh-ed25519 line (400)
	CodeInvalidSignature    Code = "invalid_signature"     // challenge signature does not verify (400)
	CodeUnauthorized        Code = "unauthorized"          // missing or bad token (401)
	CodePairingCodeRejected Code = "pairing_code_rejected" // unknown, used or expired code (403)
	CodeNotFound            Code = "not_found"             // unknown id (404)
	CodeWrongState          Code = "wrong_state"           // transition not allowed from the current status (409)
	CodeConflict            Code = "conflict"              // e.g. tunnel port pool exhausted, name exists (409)
	CodeUnavailable         Code = "unavailable"           // database unreachable (503)
	CodeInternal            Code = "internal"              // anything unexpected (500)

	// Codes only the HTTP layer produces (the request never reached the
	// domain), in the same type so that one code travels from the server
	// through the wire to the client and its exit status.
	CodeBodyTooLarge     Code = "body_too_large"     // request body over the limit (413)
	CodeRateLimited      Code = "rate_limited"       // too many requests from this source (429)
	CodeMethodNotAllowed Code = "method_not_allowed" // wrong HTTP method (405)
)

// Codes returns every error code, for the tables that map them (HTTP
// status, exit status) and their tests.
func Codes() []Code {
	return []Code{CodeInvalidRequest, CodeInvalidPublicKey, CodeInvalidSignature, CodeUnauthorized,
		CodePairingCodeRejected, CodeNotFound, CodeWrongState, CodeConflict, CodeUnavailable, CodeInternal,
		CodeBodyTooLarge, CodeRateLimited, CodeMethodNotAllowed}
}

// Error is the domain's error: a stable Code and a Message safe to show to
// the caller. Err, when set, is the cause and is logged on the server only.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Err != errMalformedCode {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted, user-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, or CodeInternal when err carries none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the user-safe message of err; errors without a code
// give a generic message so that internals never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrNotFound is returned by stores for a missing row.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}

// ErrUnavailable wraps database connectivity failures.
func ErrUnavailable(err error) error {
	return &Error{Code: CodeUnavailable, Message: "database unavailable, try again shortly", Err: err}
}
