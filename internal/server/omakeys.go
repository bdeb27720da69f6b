package server

import (
	"crypto/tls"
	"errors"
)

// The OMA's own keys can change while it runs (oma-server rotate,
// docs/rotation.md): the public certificate, with the next one whose pin
// GET /api/v1/vma/self announces during a rotation's overlap, and the SSH
// host key that approvals hand out.

// certSet is the public listener's certificate and, during a rotation,
// the next one (announced, not presented).
type certSet struct {
	current       tls.Certificate
	fingerprint   string
	next          *tls.Certificate
	nextPinString string
}

// SetCertificates makes current the certificate the public listener
// presents from its next handshake on, and next (nil: none) the one whose
// pin self announces. Both need their Leaf.
func (s *Server) SetCertificates(current tls.Certificate, next *tls.Certificate) error {
	if len(current.Certificate) == 0 || current.Leaf == nil {
		return errors.New("server: a TLS certificate (with Leaf) is required for the public listener")
	}
	cs := &certSet{current: current, fingerprint: SPKIFingerprint(current.Leaf)}
	if next != nil {
		if next.Leaf == nil {
			return errors.New("server: the next TLS certificate needs its Leaf")
		}
		if fp := SPKIFingerprint(next.Leaf); fp != cs.fingerprint {
			cs.next, cs.nextPinString = next, fp
		}
	}
	s.certs.Store(cs)
	return nil
}

// NextFingerprint is the pin of the next certificate during a rotation's
// overlap, else "".
func (s *Server) NextFingerprint() string { return s.certs.Load().nextPinString }

// getCertificate serves the current certificate (tls.Config.GetCertificate).
func (s *Server) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &s.certs.Load().current, nil
}

// SetTunnelHostKey changes the SSH host key (authorized_keys line) that
// approved results carry, after a host key rotation's switch.
func (s *Server) SetTunnelHostKey(line string) { s.hostKey.Store(&line) }

func (s *Server) tunnelHostKey() string {
	if p := s.hostKey.Load(); p != nil {
		return *p
	}
	return s.cfg.Tunnel.HostKey
}
