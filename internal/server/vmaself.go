package server

import (
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/vmaauth"
)

// VMA-authenticated endpoints on the public listener (docs/rotation.md):
// the VMA presents its enrolled key as a self-signed TLS client
// certificate, the one mechanism of internal/vmaauth (the TLS data path
// uses it too). The public listener requests a client certificate and
// never requires one, so the enrollment endpoints are unchanged; these
// handlers refuse a request without an approved key with 401 unauthorized
// (no certificate, an unknown key, a revoked enrollment, or a key that was
// rotated away and whose grace ended: one answer, so that a stranger learns
// nothing about which keys were ever enrolled).

// vmaIdentity authenticates the request's client certificate.
func (s *Server) vmaIdentity(r *http.Request) (*enroll.TunnelIdentity, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, enroll.Errorf(enroll.CodeUnauthorized, "%v", vmaauth.ErrNoCertificate)
	}
	if r.TLS.Version < tls.VersionTLS13 {
		// TLS 1.2 sends the client certificate in clear.
		return nil, enroll.Errorf(enroll.CodeUnauthorized, "VMA endpoints need TLS 1.3 (the client certificate stays encrypted)")
	}
	return vmaauth.Authenticate(r.Context(), s.svc, *r.TLS)
}

func (s *Server) handleVMASelf(w http.ResponseWriter, r *http.Request) {
	id, err := s.vmaIdentity(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.svc.Self(r.Context(), id.EnrollmentID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	e := info.Enrollment
	out := api.VMASelf{
		EnrollmentID: e.ID, VMAName: e.VMAName, Status: string(e.Status),
		KeyFingerprint: e.VMAFingerprint, AuthenticatedWith: "current",
		KeySince: info.KeySince, TunnelPort: e.TunnelPort,
		ConnectionStatus: "never", OMAFingerprint: s.Fingerprint(),
		OMANextFingerprint: s.NextFingerprint(),
	}
	if id.PreviousKey {
		out.AuthenticatedWith = "previous"
	}
	if info.KeySince != nil {
		out.KeyAgeSeconds = int64(time.Since(*info.KeySince).Seconds())
	}
	out.KeyStatus = string(enroll.KeyOK)
	if k := info.Key; k != nil {
		out.KeyStatus = string(k.Status)
		out.KeyRotateAfter, out.KeyExpiresAt, out.KeyRefusedAfter = k.RotateAfter, k.ExpiresAt, k.RefusedAfter
	}
	if rot := info.Rotation; rot != nil {
		out.Rotations = rot.Rotations
		if rot.PreviousUntil != nil && rot.PreviousUntil.After(time.Now()) {
			out.PreviousKeyFingerprint, out.PreviousKeyUntil = rot.PreviousFingerprint, rot.PreviousUntil
		}
	}
	if c := info.Connection; c != nil {
		out.ConnectionStatus, out.ConnectedAt, out.LastSeenAt = c.ConnectionStatus, c.ConnectedAt, c.LastSeenAt
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleVMARotate(w http.ResponseWriter, r *http.Request) {
	id, err := s.vmaIdentity(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if id.PreviousKey {
		s.writeError(w, r, enroll.Errorf(enroll.CodeWrongState, "this key was rotated away (key %s is accepted only until its grace ends): rotate with the current key", id.Fingerprint))
		return
	}
	var req api.VMARotateRequest
	if err := decode(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.PublicKey == "" || req.Signature == "" {
		s.writeError(w, r, badRequest("public_key and signature are required"))
		return
	}
	sig, err := base64.StdEncoding.DecodeString(req.Signature)
	if err != nil {
		s.writeError(w, r, enroll.Errorf(enroll.CodeInvalidSignature, "signature is not standard base64: %s", enroll.Printable(err.Error())))
		return
	}
	binding, err := r.TLS.ExportKeyingMaterial(enroll.RotationExporterLabel, nil, enroll.RotationBindingSize)
	if err != nil {
		binding = nil // RotateKey refuses it with a clear message
	}
	e, err := s.svc.RotateKey(r.Context(), enroll.RotateKeyRequest{
		EnrollmentID: id.EnrollmentID, CurrentFingerprint: id.Fingerprint,
		NewPublicKey: req.PublicKey, Signature: sig, Binding: binding,
	}, meta(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.svc.Self(r.Context(), e.ID)
	if err != nil || info.Rotation == nil || info.Rotation.PreviousUntil == nil {
		// The swap committed; only the echo failed.
		writeJSON(w, http.StatusOK, api.VMARotateResponse{EnrollmentID: e.ID, KeyFingerprint: e.VMAFingerprint, PreviousKeyFingerprint: id.Fingerprint})
		return
	}
	writeJSON(w, http.StatusOK, api.VMARotateResponse{EnrollmentID: e.ID, KeyFingerprint: e.VMAFingerprint,
		PreviousKeyFingerprint: id.Fingerprint, PreviousKeyUntil: *info.Rotation.PreviousUntil})
}
