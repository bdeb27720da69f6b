package vmaenroll

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/vmaauth"
)

// The VMA-authenticated endpoints (GET /api/v1/vma/self, POST
// /api/v1/vma/rotate): HTTPS to the OMA's public port, pinned like
// enrollment, with the VMA's key as the TLS client certificate
// (internal/vmaauth).

// errRefused is the OMA's 401: it does not accept this key (unknown,
// revoked, or rotated away and its grace ended).
var errRefused = errors.New("the OMA does not accept this key")

// vmaAPIError is an error answer of the OMA other than 401.
type vmaAPIError struct {
	Status int
	Code   string
	Msg    string
}

func (e *vmaAPIError) Error() string {
	return fmt.Sprintf("the OMA answered %d %s: %s", e.Status, e.Code, cleanMessage(e.Msg))
}

// vmaTLS is the client TLS configuration: the pinned OMA, TLS 1.3, priv as
// the client certificate.
func vmaTLS(st *State, priv ed25519.PrivateKey) (*tls.Config, error) {
	cert, err := vmaauth.ClientCertificate(priv)
	if err != nil {
		return nil, err
	}
	cfg := client.TLSConfig(st.OMAFingerprint, st.InsecureSkipTLSVerify)
	if st.OMAFingerprint != "" {
		pins := omaPins(st) // the next one too, during a rotation (omapins.go)
		cfg = client.TLSConfigPins(func() []string { return pins })
	}
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{"http/1.1"}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}

// vmaCall makes one request on a fresh mTLS connection. body, when set,
// is called with the connection's state (to sign its channel binding).
func vmaCall(ctx context.Context, st *State, priv ed25519.PrivateKey, method, path string, body func(tls.ConnectionState) (any, error), out any) error {
	addr, err := parseOMA(st.OMA)
	if err != nil {
		return err
	}
	cfg, err := vmaTLS(st, priv)
	if err != nil {
		return err
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	nc, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return fmt.Errorf("connect to the OMA at %s: %w", addr, err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	} else {
		nc.SetDeadline(time.Now().Add(30 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	tc := nc.(*tls.Conn)
	var payload []byte
	if body != nil {
		v, err := body(tc.ConnectionState())
		if err != nil {
			return err
		}
		if payload, err = json.Marshal(v); err != nil {
			return err
		}
	}
	req, err := http.NewRequest(method, "https://"+addr.String()+path, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "vma-enroll/"+cmdutil.Version)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Body, req.ContentLength = nil, 0
	}
	req.Close = true
	if err := req.Write(nc); err != nil {
		return fmt.Errorf("send %s %s: %w", method, path, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), req)
	if err != nil {
		return fmt.Errorf("read the answer to %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		_ = json.Unmarshal(data, &eb)
		if resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("%w (%s)", errRefused, cleanMessage(eb.Error.Message))
		}
		return &vmaAPIError{Status: resp.StatusCode, Code: string(eb.Error.Code), Msg: eb.Error.Message}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the answer to %s %s is not JSON: %w", method, path, err)
	}
	return nil
}

// selfCall asks GET /api/v1/vma/self with priv.
func selfCall(ctx context.Context, st *State, priv ed25519.PrivateKey) (*api.VMASelf, error) {
	var out api.VMASelf
	if err := vmaCall(ctx, st, priv, http.MethodGet, api.PathVMASelf, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// rotateCall asks the OMA, authenticated with cur, to replace it with
// next, signing this connection's channel binding with next.
func rotateCall(ctx context.Context, st *State, cur, next ed25519.PrivateKey) (*api.VMARotateResponse, error) {
	curFP := sshkey.Fingerprint(cur.Public().(ed25519.PublicKey))
	line := sshkey.AuthorizedKey(next.Public().(ed25519.PublicKey), "")
	_, canon, err := sshkey.ParseAuthorizedKey(line)
	if err != nil {
		return nil, err
	}
	var out api.VMARotateResponse
	err = vmaCall(ctx, st, cur, http.MethodPost, api.PathVMARotate, func(cs tls.ConnectionState) (any, error) {
		binding, err := cs.ExportKeyingMaterial(enroll.RotationExporterLabel, nil, enroll.RotationBindingSize)
		if err != nil {
			return nil, fmt.Errorf("TLS channel binding: %w", err)
		}
		sig := ed25519.Sign(next, enroll.RotationMessage(st.EnrollmentID, curFP, canon, binding))
		return api.VMARotateRequest{PublicKey: line, Signature: base64.StdEncoding.EncodeToString(sig)}, nil
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}
