package enroll

import (
	"context"
	"errors"

	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// EventForwardRefused records a tunnel request outside what the VMA is
// allowed (a shell, another port, another bind address).
const EventForwardRefused EventType = "forward_refused"

// TunnelIdentity is the approved enrollment an SSH key belongs to.
type TunnelIdentity struct {
	EnrollmentID string
	VMAName      string
	Fingerprint  string
	TunnelPort   int
	// PreviousKey: the key is the one the VMA rotated away from, still
	// accepted during the rotation's grace (rotate.go).
	PreviousKey bool
}

// AuthorizeTunnelKey returns the approved, unrevoked enrollment whose key is
// authorizedKey (an authorized_keys line), or an unauthorized error: also
// for a key older than the key expiry policy allows (the first refusal of
// such a key is audited as key_expired).
func (s *Service) AuthorizeTunnelKey(ctx context.Context, authorizedKey string) (*TunnelIdentity, error) {
	pub, canon, err := sshkey.ParseAuthorizedKey(authorizedKey)
	if err != nil {
		return nil, Errorf(CodeUnauthorized, "tunnel key refused: %v", err)
	}
	fp := sshkey.Fingerprint(pub)
	list, err := s.Store.ApprovedByFingerprint(ctx, fp)
	if err != nil {
		return nil, err
	}
	for _, e := range list {
		if e.VMAPublicKey == canon && e.TunnelPort != nil {
			r, err := s.keyRotation(ctx, e.ID)
			if err != nil {
				return nil, err
			}
			// The key expiry policy (keyexpiry.go): past max age + grace
			// the key is refused, and audited once.
			if since := keySince(&e, r); since != nil && s.Config.KeyPolicy.Enabled() {
				if k := s.Config.KeyPolicy.Check(*since, s.now()); k.Status == KeyExpired {
					if err := s.recordKeyExpired(ctx, e.ID, fp, k, Meta{}); err != nil {
						return nil, err
					}
					return nil, keyExpiredError(fp, k)
				}
			}
			if err := s.endGraceOnNewKey(ctx, r); err != nil {
				return nil, err
			}
			return &TunnelIdentity{EnrollmentID: e.ID, VMAName: e.VMAName, Fingerprint: fp, TunnelPort: *e.TunnelPort}, nil
		}
	}
	if id, err := s.authorizePreviousKey(ctx, fp, canon); err != nil || id != nil {
		return id, err
	}
	return nil, Errorf(CodeUnauthorized, "tunnel key %s is not approved (unknown, revoked or superseded)", fp)
}

// EnrollmentStatuses returns the current status of each id that exists.
func (s *Service) EnrollmentStatuses(ctx context.Context, ids []string) (map[string]Status, error) {
	if len(ids) == 0 {
		return map[string]Status{}, nil
	}
	return s.Store.EnrollmentStatuses(ctx, ids)
}

// TunnelConnected records a live tunnel of an approved VMA and audits it.
func (s *Service) TunnelConnected(ctx context.Context, id, remoteAddr string, meta Meta) error {
	return s.do(ctx, func(o *op) error {
		e, err := o.tx.GetEnrollment(ctx, id)
		if err != nil {
			return err
		}
		if e.Status != StatusApproved {
			return Errorf(CodeUnauthorized, "enrollment %s is %s", id, e.Status)
		}
		c, err := o.tx.GetConnection(ctx, id)
		if errors.Is(err, ErrNotFound) {
			c = &Connection{EnrollmentID: id, VMAName: e.VMAName, VMAFingerprint: e.VMAFingerprint, SSHUser: s.Config.SSHUser, TunnelPort: e.TunnelPort, CreatedAt: o.now}
		} else if err != nil {
			return err
		}
		first := c.ConnectedAt == nil
		c.ConnectionStatus = ConnConnected
		c.RemoteAddr = remoteAddr
		c.ConnectedAt = &o.now
		c.LastSeenAt = &o.now
		c.TunnelPort = e.TunnelPort
		c.UpdatedAt = o.now
		if err := o.tx.UpsertConnection(ctx, c); err != nil {
			return err
		}
		details := map[string]any{"remote_addr": remoteAddr, "first_connection": first}
		if e.ApprovedAt != nil {
			details["since_approval_seconds"] = o.now.Sub(*e.ApprovedAt).Seconds()
		}
		return o.audit(enrollmentAudit(e, EventConnection, meta), details)
	})
}

// TunnelSeen refreshes last_seen_at of a connected tunnel (keepalives).
func (s *Service) TunnelSeen(ctx context.Context, id string) error {
	return s.Store.InTx(ctx, func(tx Tx) error {
		c, err := tx.GetConnection(ctx, id)
		if err != nil {
			return err
		}
		if c.ConnectionStatus != ConnConnected {
			return nil
		}
		now := s.now()
		c.LastSeenAt = &now
		c.UpdatedAt = now
		return tx.UpsertConnection(ctx, c)
	})
}

// TunnelDisconnected audits a closed tunnel; when it was the VMA's last one
// it marks the connection disconnected (unless it was revoked).
func (s *Service) TunnelDisconnected(ctx context.Context, id, reason string, last bool, meta Meta) error {
	return s.do(ctx, func(o *op) error {
		e, err := o.tx.GetEnrollment(ctx, id)
		if err != nil {
			return err
		}
		c, err := o.tx.GetConnection(ctx, id)
		if err != nil {
			return err
		}
		if last && c.ConnectionStatus == ConnConnected {
			c.ConnectionStatus = ConnDisconnected
			c.UpdatedAt = o.now
			if err := o.tx.UpsertConnection(ctx, c); err != nil {
				return err
			}
		}
		return o.audit(enrollmentAudit(e, EventDisconnection, meta), map[string]any{"reason": reason})
	})
}

// maxRefusedText bounds the description of a refused request as it is
// stored (the caller already cut what the peer chose; this is the last
// line of defence of the audit table, which cannot be pruned).
const maxRefusedText = 256

// TunnelRefused audits a refused tunnel request.
func (s *Service) TunnelRefused(ctx context.Context, id, what string, meta Meta) error {
	return s.do(ctx, func(o *op) error {
		e, err := o.tx.GetEnrollment(ctx, id)
		if err != nil {
			return err
		}
		return o.audit(enrollmentAudit(e, EventForwardRefused, meta), map[string]any{"refused": Sanitize(what, maxRefusedText)})
	})
}

// TunnelRefusalsSummary audits, as one forward_refused event, count refused
// requests of one connection that were not audited one by one; last is the
// latest of them.
func (s *Service) TunnelRefusalsSummary(ctx context.Context, id string, count int, last string, meta Meta) error {
	return s.do(ctx, func(o *op) error {
		e, err := o.tx.GetEnrollment(ctx, id)
		if err != nil {
			return err
		}
		return o.audit(enrollmentAudit(e, EventForwardRefused, meta), map[string]any{
			"summary": true, "count": count, "last_refused": Sanitize(last, maxRefusedText)})
	})
}
