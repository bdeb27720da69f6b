package enroll

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/labels"
)

// CodeOptions describe a pairing code (docs/fleet.md). The zero value is
// the design's code: one use, the default lifetime, no labels.
type CodeOptions struct {
	TTL  time.Duration // 0: the default
	Note string
	// Uses is how many enrollments the code allows (0: one).
	Uses int
	// Labels are copied onto every enrollment made with the code.
	Labels labels.Set
	// AutoApprove approves each verified enrollment at once, as the actor
	// "code:<id>"; From, when not empty, limits that to VMAs whose address
	// is inside one of these prefixes (comma-separated CIDRs).
	AutoApprove bool
	From        string
}

// ParseCIDRs checks a comma-separated list of CIDR prefixes (or single
// addresses) and returns them canonical.
func ParseCIDRs(text string) ([]netip.Prefix, error) {
	if len(text) > contract.MaxCIDRBytes {
		return nil, Errorf(CodeInvalidRequest, "from_cidr is too long (%d bytes, at most %d)", len(text), contract.MaxCIDRBytes)
	}
	var out []netip.Prefix
	for _, p := range strings.Split(text, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		var (
			pfx netip.Prefix
			err error
		)
		if strings.Contains(p, "/") {
			pfx, err = netip.ParsePrefix(p)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(p); err == nil {
				pfx = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
			}
		}
		if err != nil {
			return nil, Errorf(CodeInvalidRequest, "from_cidr %q is not a CIDR prefix: write e.g. 10.20.0.0/16", Printable(p))
		}
		out = append(out, pfx.Masked())
	}
	return out, nil
}

func cidrString(ps []netip.Prefix) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// inPrefixes reports whether the address ip is inside one of ps.
func inPrefixes(ip string, ps []netip.Prefix) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// useHash is the pairing_code_hash an enrollment records for the nth use
// of its code: the code's hash for the first use (so that a single-use
// code's enrollment looks as before), and a hash derived from it and n for
// later uses (the column is unique).
func useHash(codeHash string, n int) string {
	if n <= 1 {
		return codeHash
	}
	return HashSecret(fmt.Sprintf("%s#%d", codeHash, n))
}

// CreatePairingCodeWith issues a pairing code as opts say. Only its hash
// is stored; the code is shown once.
func (s *Service) CreatePairingCodeWith(ctx context.Context, opts CodeOptions, meta Meta) (*IssuedCode, error) {
	ttl := opts.TTL
	if ttl == 0 {
		ttl = s.Config.CodeTTL
	}
	if err := ValidateTTL(ttl, s.Config.MaxCodeTTL); err != nil {
		return nil, err
	}
	if err := ValidateText("note", opts.Note, contract.MaxNoteBytes); err != nil {
		return nil, err
	}
	uses := opts.Uses
	if uses == 0 {
		uses = contract.DefaultCodeUses
	}
	if uses < 1 || uses > s.Config.MaxCodeUses {
		return nil, Errorf(CodeInvalidRequest, "uses must be between 1 and %d (the server's max-code-uses)", s.Config.MaxCodeUses)
	}
	if err := opts.Labels.Validate(); err != nil {
		return nil, &Error{Code: CodeInvalidRequest, Message: "labels: " + err.Error()}
	}
	from, err := ParseCIDRs(opts.From)
	if err != nil {
		return nil, err
	}
	if len(from) > 0 && !opts.AutoApprove {
		return nil, Errorf(CodeInvalidRequest, "from_cidr limits pre-approval: give it together with auto_approve")
	}
	var out *IssuedCode
	err = s.do(ctx, func(o *op) error {
		code, err := NewPairingCode(s.rand())
		if err != nil {
			return err
		}
		id, err := NewID(s.rand())
		if err != nil {
			return err
		}
		pc := &PairingCode{
			ID: id, CodeHash: PairingCodeHash(s.AuditKey, code), CodeHint: code[:4] + "-…",
			GeneratedBy: meta.Actor, Note: opts.Note, ExpiresAt: o.now.Add(ttl), CreatedAt: o.now,
			MaxUses: uses, Labels: opts.Labels.Encode(), AutoApprove: opts.AutoApprove, FromCIDR: cidrString(from),
		}
		if err := o.tx.CreatePairingCode(ctx, pc); err != nil {
			return err
		}
		ev := &AuditEvent{EventType: EventPairingCodeGenerated, SourceIP: meta.SourceIP, UserAgent: truncateUTF8(meta.UserAgent, 255), ApprovedBy: meta.Actor}
		details := map[string]any{"pairing_code_id": id, "code_hint": pc.CodeHint, "expires_at": pc.ExpiresAt, "note": opts.Note}
		if uses > 1 {
			details["uses"] = uses
		}
		if len(opts.Labels) > 0 {
			details["labels"] = opts.Labels.String()
		}
		if opts.AutoApprove {
			details["auto_approve"] = true
			if pc.FromCIDR != "" {
				details["from_cidr"] = pc.FromCIDR
			}
		}
		if err := o.audit(ev, details); err != nil {
			return err
		}
		out = &IssuedCode{Code: Secret(FormatPairingCode(code)), ID: id, ExpiresAt: pc.ExpiresAt, Row: pc}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PairingCodes lists codes, newest first: the usable ones, or all with all.
func (s *Service) PairingCodes(ctx context.Context, all bool) ([]PairingCode, error) {
	return s.Store.ListPairingCodes(ctx, all, s.now(), 1000)
}

// RevokePairingCode withdraws the code with this id (or a unique prefix of
// at least 8 characters of it): it allows no further use. Enrollments it
// already made stay as they are.
func (s *Service) RevokePairingCode(ctx context.Context, id string, meta Meta) (*PairingCode, error) {
	id, err := NormalizeID(id)
	if err != nil {
		return nil, Errorf(CodeInvalidRequest, "%q is not a pairing code id (a UUID, see 'omactl pairing-code list')", Printable(id))
	}
	var out *PairingCode
	err = s.do(ctx, func(o *op) error {
		pc, err := o.tx.PairingCodeByID(ctx, id)
		if err != nil {
			return err
		}
		if pc.RevokedAt != nil {
			return Errorf(CodeWrongState, "pairing code %s is already revoked", id)
		}
		ok, err := o.tx.RevokePairingCode(ctx, id, meta.Actor, o.now)
		if err != nil {
			return err
		}
		if !ok {
			return Errorf(CodeWrongState, "pairing code %s was revoked meanwhile", id)
		}
		pc.RevokedAt, pc.RevokedBy = &o.now, meta.Actor
		ev := &AuditEvent{EventType: EventPairingCodeRevoked, SourceIP: meta.SourceIP, UserAgent: truncateUTF8(meta.UserAgent, 255), ApprovedBy: meta.Actor}
		if err := o.audit(ev, map[string]any{"pairing_code_id": id, "uses_taken": pc.UseCount, "uses": pc.MaxUses}); err != nil {
			return err
		}
		out = pc
		return nil
	})
	return out, err
}

// CodeActor is the actor recorded for approvals made by a pre-approved code.
func CodeActor(codeID string) string { return "code:" + codeID }

// autoApprove approves e (just verified) when its code pre-approves: the
// code is unrevoked and unexpired, the VMA's address at enroll and at
// verify is inside the code's prefixes (if any), and approving would
// supersede nobody (a leaked code must not take over an approved VMA's
// name or key: such an enrollment waits for an admin). It reports whether
// it approved; when it did not, e stays awaiting approval.
func (o *op) autoApprove(e *Enrollment, meta Meta) (bool, error) {
	if e.PairingCodeID == "" {
		return false, nil
	}
	pc, err := o.tx.PairingCodeByID(o.ctx, e.PairingCodeID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil || !pc.AutoApprove {
		return false, err
	}
	skip := func(reason string) (bool, error) {
		o.s.Log.Info("pre-approval not applied", "enrollment_id", e.ID, "pairing_code_id", pc.ID, "reason", reason)
		return false, nil
	}
	if pc.RevokedAt != nil {
		return skip("code revoked")
	}
	if !o.now.Before(pc.ExpiresAt) {
		return skip("code expired")
	}
	if pc.FromCIDR != "" {
		ps, err := ParseCIDRs(pc.FromCIDR)
		if err != nil {
			return false, fmt.Errorf("pairing code %s has a damaged from_cidr: %w", pc.ID, err)
		}
		if !inPrefixes(e.VMAIPAddress, ps) || !inPrefixes(meta.SourceIP, ps) {
			return skip("address outside from_cidr")
		}
	}
	olds, err := o.tx.ApprovedByName(o.ctx, e.VMAName)
	if err != nil {
		return false, err
	}
	sameKey, err := o.tx.ApprovedByFingerprint(o.ctx, e.VMAFingerprint)
	if err != nil {
		return false, err
	}
	if len(olds) > 0 || len(sameKey) > 0 {
		return skip("would supersede an approved VMA")
	}
	if _, err := o.allocatePort(); err != nil {
		if ErrorCode(err) == CodeConflict {
			return skip("no free tunnel port")
		}
		return false, err
	}
	am := Meta{SourceIP: meta.SourceIP, UserAgent: meta.UserAgent, Actor: CodeActor(pc.ID)}
	if err := o.approve(e, "", am, map[string]any{"pre_approved": true, "pairing_code_id": pc.ID, "code_created_by": pc.GeneratedBy}); err != nil {
		return false, err
	}
	return true, nil
}
