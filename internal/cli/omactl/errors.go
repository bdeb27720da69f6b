package omactl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// explain turns a client error into one message that says what happened
// and what to do next, keeping the error underneath (its enroll.Code, its
// client type) and its exit status from exitCode, omactl's one table.
func (f *Factory) explain(err error) error {
	if err == nil {
		return nil
	}
	var fe *cmdutil.FlagError
	var ee *cmdutil.ExitError
	if errors.As(err, &fe) || errors.As(err, &ee) {
		return err
	}
	return &cmdutil.ExitError{Code: exitCode(err), Err: cmdutil.Explained(f.describe(err), err)}
}

// describe says what happened with err and what to do next.
func (f *Factory) describe(err error) string {
	server := f.Config.Server
	var fm *client.FingerprintMismatchError
	if errors.As(err, &fm) {
		return fmt.Sprintf("the admin listener at %s presents a certificate with fingerprint %s, not the --fingerprint %s: "+
			"either its certificate changed (oma-server logs admin_fingerprint when it starts) or something is in between; do not send the token there until you know which",
			server, fm.Got, fm.Want)
	}
	if cause := tlsCause(err); cause != nil {
		if client.ProbeListener(context.Background(), server) == "public" {
			return fmt.Sprintf("%s is oma-server's public listener (for VMAs), not its admin listener: point --server (or OMACTL_SERVER) at the admin listener (http://127.0.0.1:8082 by default; oma-server logs admin_listen when it starts)", server)
		}
		return fmt.Sprintf("the admin listener at %s presents a certificate this machine does not trust (%v). "+
			"For oma-server's own self-signed certificate, pass --fingerprint with the admin_fingerprint that oma-server logs when it starts (or OMACTL_FINGERPRINT); "+
			"for a private CA, point SSL_CERT_FILE at its PEM bundle", server, cause)
	}
	if client.IsPlainHTTP(err) {
		return fmt.Sprintf("%s speaks plain HTTP, not HTTPS (an admin listener without --admin-tls): use http:// in --server (or OMACTL_SERVER)", server)
	}
	var ne *client.NetworkError
	if errors.As(err, &ne) {
		return fmt.Sprintf("cannot reach oma-server at %s: %v. Is oma-server running? Check --server or OMACTL_SERVER", server, ne.Err)
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	var pe *client.ProtocolError
	if errors.As(err, &pe) {
		return fmt.Sprintf("unexpected answer from %s: %v. Is --server the admin listener of oma-server?", server, pe.Err)
	}
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return err.Error()
	}
	switch {
	case ae.TLSOnly:
		return fmt.Sprintf("%s answers only HTTPS: it looks like oma-server's public listener (the one VMAs enroll through, port 443 by default), not its admin listener. "+
			"Point --server (or OMACTL_SERVER) at the admin listener (http://127.0.0.1:8082 by default; oma-server logs admin_listen when it starts); for an admin listener with --admin-tls, use https:// and --fingerprint", server)
	case ae.Listener == "public":
		return fmt.Sprintf("%s is oma-server's public listener (for VMAs), not its admin listener: point --server (or OMACTL_SERVER) at the admin listener (http://127.0.0.1:8082 by default; oma-server logs admin_listen when it starts)", server)
	}
	msg := cleanLong(ae.Err.Message)
	switch ae.Err.Code {
	case enroll.CodeUnauthorized:
		src := "--token-file " + f.Config.TokenFile
		if f.Config.Token != "" {
			src = "--token (or OMACTL_TOKEN)"
		}
		return fmt.Sprintf("the admin token was refused (%s): check %s; 'oma-server token create --name NAME' makes a new token", msg, src)
	case enroll.CodeUnavailable:
		return fmt.Sprintf("%s: the server's database is unavailable; try again shortly", msg)
	case enroll.CodeRateLimited:
		if ae.RetryAfter > 0 {
			return fmt.Sprintf("%s: rate limited, try again in %s", msg, ae.RetryAfter)
		}
		return fmt.Sprintf("%s: rate limited, try again shortly", msg)
	case enroll.CodeNotFound:
		if ae.Status == 404 && msg == "" {
			return fmt.Sprintf("not found on %s: is --server the admin listener of oma-server?", server)
		}
		return fmt.Sprintf("%s (see 'omactl pending' and 'omactl active')", msg)
	case enroll.CodeInternal:
		return fmt.Sprintf("the server failed (HTTP %d: %s): see the oma-server log", ae.Status, msg)
	default:
		return msg
	}
}

// tlsCause returns the failed check of the server's certificate (unknown
// authority, wrong name, expired) behind err, or nil.
func tlsCause(err error) error {
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) {
		return ve.Err
	}
	return nil
}
