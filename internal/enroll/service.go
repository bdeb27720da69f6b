// Package enroll is the domain of VMA enrollment: the state machine of
// docs/design.md §4, pairing codes, challenges, poll tokens, the chained audit
// trail and admin tokens. It knows nothing of HTTP or SQL: persistence goes
// through the Store interface and time through an injectable clock.
package enroll

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/labels"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// Config holds the service's tunables. Zero values take the defaults.
type Config struct {
	CodeTTL        time.Duration // default lifetime of a pairing code (10m)
	MaxCodeTTL     time.Duration // upper bound for a requested lifetime (24h)
	MaxCodeUses    int           // upper bound for a code's uses (contract.MaxCodeUses)
	VerifyWindow   time.Duration // enroll → verify (10m)
	ApprovalWindow time.Duration // verify → approve (30m)
	PortMin        int           // tunnel port pool (9081-9999)
	PortMax        int
	SSHUser        string        // tunnel user recorded on connections (vma_tunnel)
	PollInterval   time.Duration // database re-check period of a long poll (250ms)
	MaxWait        time.Duration // longest long poll (60s)
	RotationGrace  time.Duration // previous key still accepted after a rotation (10m; rotate.go)
	KeyPolicy      KeyPolicy     // key expiry (off when MaxAge is 0; expiry.go)
}

// Defaults returns the design's defaults.
func Defaults() Config {
	return Config{
		CodeTTL:        10 * time.Minute,
		MaxCodeTTL:     24 * time.Hour,
		VerifyWindow:   10 * time.Minute,
		ApprovalWindow: 30 * time.Minute,
		PortMin:        contract.TunnelPortMin,
		PortMax:        contract.TunnelPortMax,
		SSHUser:        contract.TunnelUser,
		PollInterval:   250 * time.Millisecond,
		MaxWait:        contract.MaxWait,
	}
}

func (c *Config) fill() {
	d := Defaults()
	if c.CodeTTL == 0 {
		c.CodeTTL = d.CodeTTL
	}
	if c.MaxCodeTTL == 0 {
		c.MaxCodeTTL = d.MaxCodeTTL
	}
	if c.MaxCodeUses == 0 {
		c.MaxCodeUses = contract.MaxCodeUses
	}
	if c.VerifyWindow == 0 {
		c.VerifyWindow = d.VerifyWindow
	}
	if c.ApprovalWindow == 0 {
		c.ApprovalWindow = d.ApprovalWindow
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = d.PortMin, d.PortMax
	}
	if c.SSHUser == "" {
		c.SSHUser = d.SSHUser
	}
	if c.PollInterval == 0 {
		c.PollInterval = d.PollInterval
	}
	if c.MaxWait == 0 {
		c.MaxWait = d.MaxWait
	}
}

// Service carries out every enrollment operation.
type Service struct {
	Store    Store
	Config   Config
	AuditKey []byte           // HMAC key of the audit chain (from the data directory)
	Now      func() time.Time // the clock; time.Now when nil
	Rand     io.Reader        // randomness; crypto/rand when nil
	Log      *slog.Logger
	// OnAudit, when set, is called with each audit event after its
	// transaction committed (metrics are derived from it).
	OnAudit func(*AuditEvent)
}

// New builds a service over store with cfg (zero fields take defaults).
func New(store Store, cfg Config, auditKey []byte, log *slog.Logger) *Service {
	cfg.fill()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{Store: store, Config: cfg, AuditKey: auditKey, Now: time.Now, Rand: rand.Reader, Log: log}
}

// Clock is the service's current time (its Now, or time.Now), untruncated:
// what the HTTP side measures lifetimes against.
func (s *Service) Clock() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) now() time.Time {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	// One precision for every store: microseconds, UTC.
	return now().UTC().Truncate(time.Microsecond)
}

func (s *Service) rand() io.Reader {
	if s.Rand != nil {
		return s.Rand
	}
	return rand.Reader
}

// op is one transaction attempt: its clock reading and the audit rows it wrote.
type op struct {
	s      *Service
	ctx    context.Context
	tx     Tx
	now    time.Time
	events []*AuditEvent
}

// do runs fn in one transaction with one timestamp, and logs the new audit
// chain head after the commit (so that deleting the newest rows shows).
func (s *Service) do(ctx context.Context, fn func(o *op) error) error {
	now := s.now()
	var events []*AuditEvent
	err := s.Store.InTx(ctx, func(tx Tx) error {
		o := &op{s: s, ctx: ctx, tx: tx, now: now}
		if err := fn(o); err != nil {
			return err
		}
		events = o.events
		return nil
	})
	if err == nil {
		for _, ev := range events {
			s.Log.Info("audit", "audit_id", ev.ID, "event_type", ev.EventType, "mac", ev.MAC)
			if s.OnAudit != nil {
				s.OnAudit(ev)
			}
		}
	}
	return err
}

func enrollmentAudit(e *Enrollment, t EventType, meta Meta) *AuditEvent {
	id := e.ID
	return &AuditEvent{
		EnrollmentID:   &id,
		EventType:      t,
		VMAName:        e.VMAName,
		VMAFingerprint: e.VMAFingerprint,
		SourceIP:       meta.SourceIP,
		UserAgent:      truncateUTF8(meta.UserAgent, 255),
		ApprovedBy:     meta.Actor,
	}
}

func truncateUTF8(s string, n int) string { return Sanitize(s, n) }

// IssuedCode is a newly generated pairing code; Code is shown only once.
type IssuedCode struct {
	Code      Secret // XXXX-XXXX-XXXX
	ID        string
	ExpiresAt time.Time
	// Row is the stored row (hash, uses, labels, pre-approval).
	Row *PairingCode
}

// CreatePairingCode issues a single-use pairing code valid for ttl (the
// default when 0). Only its hash is stored. See CreatePairingCodeWith for
// multi-use, labelled and pre-approved codes.
func (s *Service) CreatePairingCode(ctx context.Context, ttl time.Duration, note string, meta Meta) (*IssuedCode, error) {
	return s.CreatePairingCodeWith(ctx, CodeOptions{TTL: ttl, Note: note}, meta)
}

// EnrollRequest is what a VMA sends to start an enrollment.
type EnrollRequest struct {
	PairingCode string
	PublicKey   string
	Name        string
	Version     string
	// Labels are the labels the VMA asks for (vma-enroll --label).
	Labels labels.Set
}

// EnrollResult is the server's answer: the challenge to sign.
type EnrollResult struct {
	EnrollmentID string
	Challenge    []byte
	Status       Status
	ExpiresAt    time.Time
}

// ErrPairingCodeRejected is the one answer for a wrong, used or expired code.
var ErrPairingCodeRejected = &Error{Code: CodePairingCodeRejected,
	Message: "pairing code rejected: it is wrong, already used or expired; ask the OMA admin for a new one"}

// Enroll consumes the pairing code atomically and creates an enrollment
// waiting for proof of key possession. A rejected code is audited with the
// reason (unknown, used, expired) but the caller learns only that it was
// rejected.
func (s *Service) Enroll(ctx context.Context, req EnrollRequest, meta Meta) (*EnrollResult, error) {
	if err := ValidateName(req.Name); err != nil {
		return nil, err
	}
	if err := ValidateVersion(req.Version); err != nil {
		return nil, err
	}
	if err := req.Labels.Validate(); err != nil {
		return nil, &Error{Code: CodeInvalidRequest, Message: "vma_labels: " + err.Error()}
	}
	pub, canon, err := sshkey.ParseAuthorizedKey(req.PublicKey)
	if err != nil {
		return nil, &Error{Code: CodeInvalidPublicKey, Message: "vma_public_key: " + err.Error()}
	}
	code, err := NormalizePairingCode(req.PairingCode)
	if err != nil {
		// docs/design.md §5: every refused code is the one 403
		// pairing_code_rejected. The message may say what is wrong with
		// the form: the form is no secret.
		return nil, &Error{Code: CodePairingCodeRejected, Message: ErrorMessage(err), Err: errMalformedCode}
	}
	// The keyed hash; codes issued before it (an upgrade while a code was
	// outstanding) are stored as plain SHA-256 and still match until they
	// expire (24 h at most): their row cannot hold the other form.
	hash, legacy := PairingCodeHash(s.AuditKey, code), HashSecret(code)
	fp := sshkey.Fingerprint(pub)

	var (
		res      *EnrollResult
		rejected string
	)
	err = s.do(ctx, func(o *op) error {
		res, rejected = nil, ""
		used := hash
		ok, err := o.tx.ConsumePairingCode(ctx, hash, o.now)
		if err == nil && !ok {
			used = legacy
			ok, err = o.tx.ConsumePairingCode(ctx, legacy, o.now)
		}
		if err != nil {
			return err
		}
		if !ok {
			rejected = "unknown"
			for _, h := range []string{hash, legacy} {
				pc, err := o.tx.PairingCodeByHash(ctx, h)
				if err != nil {
					if !errors.Is(err, ErrNotFound) {
						return err
					}
					continue
				}
				if pc.RevokedAt != nil {
					rejected = "revoked"
				} else if pc.UsedAt != nil || pc.UseCount >= pc.MaxUses {
					rejected = "used"
				} else {
					rejected = "expired"
				}
				break
			}
			ev := &AuditEvent{EventType: EventEnrollmentFailed, VMAName: req.Name, VMAFingerprint: fp,
				SourceIP: meta.SourceIP, UserAgent: truncateUTF8(meta.UserAgent, 255)}
			return o.audit(ev, map[string]any{"reason": "pairing_code_" + rejected, "vma_version": req.Version})
		}
		pc, err := o.tx.PairingCodeByHash(ctx, used)
		if err != nil {
			return err
		}
		id, err := NewID(s.rand())
		if err != nil {
			return err
		}
		challenge := make([]byte, ChallengeSize)
		if _, err := io.ReadFull(s.rand(), challenge); err != nil {
			return fmt.Errorf("random challenge: %w", err)
		}
		exp := o.now.Add(s.Config.VerifyWindow)
		e := &Enrollment{
			ID: id, PairingCodeHash: useHash(used, pc.UseCount), VMAPublicKey: canon, VMAName: req.Name, VMAVersion: req.Version,
			VMAFingerprint: fp, VMAIPAddress: meta.SourceIP, VMAUserAgent: truncateUTF8(meta.UserAgent, 255),
			ChallengeNonce: hex.EncodeToString(challenge), Status: VerbEnroll.Transition().To,
			ExpiresAt: &exp, CreatedAt: o.now, UpdatedAt: o.now,
			PairingCodeID: pc.ID, Labels: pc.Labels, VMALabels: req.Labels.Encode(),
		}
		if err := o.tx.CreateEnrollment(ctx, e); err != nil {
			return err
		}
		if err := o.tx.LinkPairingCode(ctx, used, id); err != nil {
			return err
		}
		details := map[string]any{"vma_version": req.Version, "pairing_code_id": pc.ID}
		if pc.MaxUses > 1 {
			details["code_use"], details["code_uses"] = pc.UseCount, pc.MaxUses
		}
		if len(req.Labels) > 0 {
			details["vma_labels"] = req.Labels.String()
		}
		if err := o.audit(enrollmentAudit(e, EventEnrollment, meta), details); err != nil {
			return err
		}
		res = &EnrollResult{EnrollmentID: id, Challenge: challenge, Status: e.Status, ExpiresAt: exp}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rejected != "" {
		s.Log.Warn("pairing code rejected", "reason", rejected, "source_ip", meta.SourceIP, "vma_name", Printable(req.Name))
		return nil, ErrPairingCodeRejected
	}
	return res, nil
}

// Verified is the answer to a successful verification.
type Verified struct {
	EnrollmentID string
	Status       Status
	PollToken    Secret
	// ExpiresAt is the end of the approval window.
	ExpiresAt time.Time
	// Approved is the enrollment when its pre-approved code approved it
	// at once (Status is then approved).
	Approved *Enrollment
}

// Verify checks the VMA's signature over its challenge. The challenge is
// used once: a second verify of the same enrollment fails with wrong_state.
// A wrong signature is audited and leaves the enrollment as it was.
func (s *Service) Verify(ctx context.Context, id string, signature []byte, meta Meta) (*Verified, error) {
	id, err := NormalizeID(id)
	if err != nil {
		return nil, err
	}
	if len(signature) != ed25519.SignatureSize {
		return nil, Errorf(CodeInvalidSignature, "signature must be %d bytes (an Ed25519 signature, base64), got %d", ed25519.SignatureSize, len(signature))
	}
	if err := s.expireIfDue(ctx, id); err != nil {
		return nil, err
	}
	token, err := NewToken(s.rand(), "vpt_")
	if err != nil {
		return nil, err
	}
	var (
		out    *Verified
		badSig bool
	)
	err = s.do(ctx, func(o *op) error {
		out, badSig = nil, false
		e, err := o.tx.GetEnrollment(ctx, id)
		if err != nil {
			return err
		}
		if !e.Status.Allows(VerbVerify) {
			return wrongState(e, "verify", "the challenge can be answered once")
		}
		if e.ExpiresAt != nil && !o.now.Before(*e.ExpiresAt) {
			return Errorf(CodeWrongState, "cannot verify enrollment %s: its time to answer the challenge ended; run vma-enroll again with a new pairing code", id)
		}
		challenge, err := hex.DecodeString(e.ChallengeNonce)
		pub, _, perr := sshkey.ParseAuthorizedKey(e.VMAPublicKey)
		if err != nil || perr != nil || len(challenge) != ChallengeSize {
			return fmt.Errorf("enrollment %s has a corrupt challenge or key", id)
		}
		if !ed25519.Verify(pub, SignedMessage(id, challenge), signature) {
			badSig = true
			return o.audit(enrollmentAudit(e, EventEnrollmentFailed, meta), map[string]any{"reason": "invalid_signature"})
		}
		exp := o.now.Add(s.Config.ApprovalWindow)
		e.Status = VerbVerify.Transition().To
		e.ChallengeNonce = ""
		e.PollTokenHash = HashSecret(string(token))
		e.VerifiedAt = &o.now
		e.ExpiresAt = &exp
		e.UpdatedAt = o.now
		ok, err := o.tx.UpdateEnrollment(ctx, e, VerbVerify)
		if err != nil {
			return err
		}
		if !ok {
			return Errorf(CodeWrongState, "enrollment %s was verified or changed meanwhile", id)
		}
		if err := o.audit(enrollmentAudit(e, EventVerification, meta), nil); err != nil {
			return err
		}
		out = &Verified{EnrollmentID: id, Status: e.Status, PollToken: Secret(token), ExpiresAt: exp}
		approved, err := o.autoApprove(e, meta)
		if err != nil {
			return err
		}
		if approved {
			out.Status, out.Approved = e.Status, e
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if badSig {
		return nil, Errorf(CodeInvalidSignature, "signature does not verify: sign %q + enrollment id + newline + the 32 challenge bytes with the private key whose public key was enrolled", ChallengePrefix)
	}
	return out, nil
}

func wrongState(e *Enrollment, verb, hint string) error {
	return Errorf(CodeWrongState, "cannot %s enrollment %s: it is %s; %s", verb, e.ID, e.Status, hint)
}

// Result returns the enrollment for its poll token. With wait > 0 it is a
// long poll: it returns as soon as the status changes (whichever server
// instance changed it: the database is re-read every PollInterval) or when
// wait (at most MaxWait) has passed.
func (s *Service) Result(ctx context.Context, id, pollToken string, wait time.Duration) (*Enrollment, error) {
	id, err := NormalizeID(id)
	if err != nil {
		return nil, err
	}
	if wait < 0 || wait > s.Config.MaxWait {
		return nil, Errorf(CodeInvalidRequest, "wait must be between 0s and %s", s.Config.MaxWait)
	}
	e, err := s.resultOnce(ctx, id, pollToken)
	if err != nil || wait == 0 {
		return e, err
	}
	start := e.Status
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(s.Config.PollInterval)
	defer tick.Stop()
	for e.Status == start && start.Undecided() {
		select {
		case <-ctx.Done():
			return e, nil
		case <-deadline.C:
			return e, nil
		case <-tick.C:
		}
		next, err := s.resultOnce(ctx, id, pollToken)
		if err != nil {
			if ctx.Err() != nil {
				return e, nil // shutting down or the client left: answer what we know
			}
			if ErrorCode(err) == CodeUnavailable {
				continue // keep waiting through a short database outage
			}
			return nil, err
		}
		e = next
	}
	return e, nil
}

func (s *Service) resultOnce(ctx context.Context, id, pollToken string) (*Enrollment, error) {
	e, err := s.Store.GetEnrollment(ctx, id)
	if err != nil {
		return nil, err
	}
	if pollToken == "" || e.PollTokenHash == "" || !EqualHash(HashSecret(pollToken), e.PollTokenHash) {
		return nil, Errorf(CodeUnauthorized, "poll token missing or wrong: send the poll_token from the verify answer as 'Authorization: Bearer <token>'")
	}
	if s.due(e) {
		if err := s.expireIfDue(ctx, id); err != nil {
			return nil, err
		}
		return s.Store.GetEnrollment(ctx, id)
	}
	return e, nil
}

func (s *Service) due(e *Enrollment) bool {
	return e.Status.Undecided() &&
		e.ExpiresAt != nil && !s.now().Before(*e.ExpiresAt)
}

// Get returns one enrollment.
func (s *Service) Get(ctx context.Context, id string) (*Enrollment, error) {
	id, err := NormalizeID(id)
	if err != nil {
		return nil, err
	}
	return s.Store.GetEnrollment(ctx, id)
}

// decisionInput checks an admin decision's enrollment id and free text
// (notes or reason), and first expires the enrollment when its time is up,
// so that a late decision meets the expired state.
func (s *Service) decisionInput(ctx context.Context, id, field, text string) (string, error) {
	id, err := NormalizeID(id)
	if err != nil {
		return "", err
	}
	if err := ValidateText(field, text, contract.MaxTextBytes); err != nil {
		return "", err
	}
	return id, s.expireIfDue(ctx, id)
}

// Approve authorizes a verified enrollment: it allocates the VMA's tunnel
// port, records the actor and notes, revokes an earlier approved enrollment
// of the same VMA name or of the same public key, and audits it, all in one
// transaction.
func (s *Service) Approve(ctx context.Context, id, notes string, meta Meta) (*Enrollment, error) {
	id, err := s.decisionInput(ctx, id, "notes", notes)
	if err != nil {
		return nil, err
	}
	var out *Enrollment
	err = s.do(ctx, func(o *op) error {
		e, err := o.tx.GetEnrollment(ctx, id)
		if err != nil {
			return err
		}
		if !e.Status.Allows(VerbApprove) {
			return wrongState(e, "approve", "only enrollments awaiting approval can be approved")
		}
		if e.ExpiresAt != nil && !o.now.Before(*e.ExpiresAt) {
			return Errorf(CodeWrongState, "cannot approve enrollment %s: its approval window ended (it expires); the VMA must enroll again with a new pairing code", id)
		}
		if err := o.approve(e, notes, meta, nil); err != nil {
			return err
		}
		out = e
		return nil
	})
	return out, err
}

// approve moves e (awaiting approval) to approved: it supersedes approved
// enrollments of the same name or key, allocates the tunnel port, creates
// the connection row and audits it with extra details.
func (o *op) approve(e *Enrollment, notes string, meta Meta, extra map[string]any) error {
	// An approved VMA of the same name, or holding the same key, is
	// superseded: a key is approved under at most one enrollment (the
	// store enforces it with a unique constraint, so two instances
	// approving two holders at once cannot both win), and the SSH
	// endpoint's lookup by key never finds a second holder.
	olds, err := o.tx.ApprovedByName(o.ctx, e.VMAName)
	if err != nil {
		return err
	}
	for i := range olds {
		old := &olds[i]
		if err := o.revoke(old, "superseded by re-enrollment "+e.ID, meta); err != nil {
			return err
		}
	}
	sameKey, err := o.tx.ApprovedByFingerprint(o.ctx, e.VMAFingerprint)
	if err != nil {
		return err
	}
	for i := range sameKey {
		old := &sameKey[i]
		if old.Status != StatusApproved || old.VMAName == e.VMAName {
			continue // revoked just above
		}
		if err := o.revoke(old, "superseded by enrollment "+e.ID+" ("+e.VMAName+"), which holds the same key", meta); err != nil {
			return err
		}
	}
	port, err := o.allocatePort()
	if err != nil {
		return err
	}
	e.Status = VerbApprove.Transition().To
	e.ApprovedBy = meta.Actor
	e.ApprovedAt = &o.now
	e.ApprovalNotes = notes
	e.TunnelPort = &port
	e.ExpiresAt = nil
	e.UpdatedAt = o.now
	ok, err := o.tx.UpdateEnrollment(o.ctx, e, VerbApprove)
	if err != nil {
		return err
	}
	if !ok {
		return Errorf(CodeWrongState, "cannot approve enrollment %s: it changed meanwhile (rejected, expired or approved by someone else)", e.ID)
	}
	if err := o.tx.UpsertConnection(o.ctx, &Connection{
		EnrollmentID: e.ID, VMAName: e.VMAName, VMAFingerprint: e.VMAFingerprint,
		SSHUser: o.s.Config.SSHUser, ConnectionStatus: ConnDisconnected, TunnelPort: &port,
		CreatedAt: o.now, UpdatedAt: o.now,
	}); err != nil {
		return err
	}
	details := map[string]any{"tunnel_port": port, "waited_seconds": o.now.Sub(e.CreatedAt).Seconds()}
	for k, v := range extra {
		details[k] = v
	}
	if notes != "" {
		details["notes"] = notes
	}
	if err := o.audit(enrollmentAudit(e, EventApproval, meta), details); err != nil {
		return err
	}
	return nil
}

func (o *op) allocatePort() (int, error) {
	used, err := o.tx.UsedTunnelPorts(o.ctx)
	if err != nil {
		return 0, err
	}
	taken := make(map[int]bool, len(used))
	for _, p := range used {
		taken[p] = true
	}
	for p := o.s.Config.PortMin; p <= o.s.Config.PortMax; p++ {
		if !taken[p] {
			return p, nil
		}
	}
	return 0, Errorf(CodeConflict, "no free tunnel port in %d-%d: revoke unused VMAs or widen --tunnel-port-range", o.s.Config.PortMin, o.s.Config.PortMax)
}

// Reject refuses an enrollment that is awaiting approval (or still awaiting
// verification) and records the reason.
func (s *Service) Reject(ctx context.Context, id, reason string, meta Meta) (*Enrollment, error) {
	id, err := s.decisionInput(ctx, id, "reason", reason)
	if err != nil {
		return nil, err
	}
	var out *Enrollment
	err = s.do(ctx, func(o *op) error {
		e, err := o.tx.GetEnrollment(ctx, id)
		if err != nil {
			return err
		}
		from := e.Status
		if !from.Allows(VerbReject) {
			return wrongState(e, "reject", "only enrollments awaiting approval or verification can be rejected")
		}
		e.Status = VerbReject.Transition().To
		e.RejectedBy = meta.Actor
		e.RejectedAt = &o.now
		e.RejectionReason = reason
		e.ExpiresAt = nil
		e.ChallengeNonce = ""
		e.UpdatedAt = o.now
		ok, err := o.tx.UpdateEnrollment(ctx, e, VerbReject)
		if err != nil {
			return err
		}
		if !ok {
			return Errorf(CodeWrongState, "cannot reject enrollment %s: it changed meanwhile", id)
		}
		if err := o.audit(enrollmentAudit(e, EventRejection, meta), map[string]any{"reason": reason}); err != nil {
			return err
		}
		out = e
		return nil
	})
	return out, err
}

// Revoke withdraws an approved enrollment: its key stops being accepted, its
// tunnel port is freed and its connection is marked revoked.
func (s *Service) Revoke(ctx context.Context, id, reason string, meta Meta) (*Enrollment, error) {
	id, err := NormalizeID(id)
	if err != nil {
		return nil, err
	}
	if err := ValidateText("reason", reason, contract.MaxTextBytes); err != nil {
		return nil, err
	}
	var out *Enrollment
	err = s.do(ctx, func(o *op) error {
		e, err := o.tx.GetEnrollment(ctx, id)
		if err != nil {
			return err
		}
		if !e.Status.Allows(VerbRevoke) {
			return wrongState(e, "revoke", "only approved enrollments can be revoked")
		}
		if err := o.revoke(e, reason, meta); err != nil {
			return err
		}
		out = e
		return nil
	})
	return out, err
}

func (o *op) revoke(e *Enrollment, reason string, meta Meta) error {
	port := e.TunnelPort
	e.Status = VerbRevoke.Transition().To
	e.RevokedBy = meta.Actor
	e.RevokedAt = &o.now
	e.RevocationNote = reason
	e.TunnelPort = nil
	e.UpdatedAt = o.now
	ok, err := o.tx.UpdateEnrollment(o.ctx, e, VerbRevoke)
	if err != nil {
		return err
	}
	if !ok {
		return Errorf(CodeWrongState, "cannot revoke enrollment %s: it changed meanwhile", e.ID)
	}
	c, err := o.tx.GetConnection(o.ctx, e.ID)
	switch {
	case err == nil:
		c.ConnectionStatus = ConnRevoked
		c.RevokedAt = &o.now
		c.RevokedBy = meta.Actor
		c.UpdatedAt = o.now
		if err := o.tx.UpsertConnection(o.ctx, c); err != nil {
			return err
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	details := map[string]any{"reason": reason}
	if port != nil {
		details["tunnel_port"] = *port
	}
	return o.audit(enrollmentAudit(e, EventRevocation, meta), details)
}

// expireIfDue moves the enrollment to expired when its window has passed.
func (s *Service) expireIfDue(ctx context.Context, id string) error {
	e, err := s.Store.GetEnrollment(ctx, id)
	if err != nil {
		return err
	}
	if !s.due(e) {
		return nil
	}
	_, err = s.expire(ctx, id)
	return err
}

// expire moves one enrollment to expired if it is still unfinished and due;
// it reports whether this call did it (of several instances, one does).
func (s *Service) expire(ctx context.Context, id string) (bool, error) {
	done := false
	err := s.do(ctx, func(o *op) error {
		done = false
		e, err := o.tx.GetEnrollment(ctx, id)
		if err != nil {
			return err
		}
		from := e.Status
		if !from.Allows(VerbExpire) || e.ExpiresAt == nil || o.now.Before(*e.ExpiresAt) {
			return nil
		}
		e.Status = VerbExpire.Transition().To
		e.ChallengeNonce = ""
		e.UpdatedAt = o.now
		ok, err := o.tx.UpdateEnrollment(ctx, e, VerbExpire)
		if err != nil || !ok {
			return err
		}
		done = true
		return o.audit(enrollmentAudit(e, EventExpiry, Meta{Actor: "system"}), map[string]any{"from_status": string(from)})
	})
	return done, err
}

// ExpireDue expires every enrollment whose window has passed and returns
// how many this call expired. It is safe to run on several instances.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	ids, err := s.Store.ExpirableEnrollments(ctx, s.now(), 500)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		ok, err := s.expire(ctx, id)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// Pending lists enrollments awaiting approval, oldest first.
func (s *Service) Pending(ctx context.Context) ([]Enrollment, error) {
	if _, err := s.ExpireDue(ctx); err != nil {
		return nil, err
	}
	return s.Store.ListEnrollments(ctx, EnrollmentFilter{Statuses: []Status{StatusAwaitingApproval}})
}

// PendingWithReplacements is Pending plus, by enrollment id, the approved
// VMAs that approving each would supersede (same name or same key), so that
// the admin sees a replacement before approving it.
func (s *Service) PendingWithReplacements(ctx context.Context) ([]Enrollment, map[string][]Replacement, error) {
	list, err := s.Pending(ctx)
	if err != nil || len(list) == 0 {
		return list, nil, err
	}
	approved, err := s.Store.ListEnrollments(ctx, EnrollmentFilter{Statuses: []Status{StatusApproved}})
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string][]Replacement)
	for i := range list {
		if r := replacements(&list[i], approved); len(r) > 0 {
			out[list[i].ID] = r
		}
	}
	return list, out, nil
}

// replacements lists the approved enrollments that approving e supersedes.
func replacements(e *Enrollment, approved []Enrollment) []Replacement {
	var out []Replacement
	for _, a := range approved {
		r := Replacement{EnrollmentID: a.ID, VMAName: a.VMAName,
			SameName: a.VMAName == e.VMAName, SameKey: a.VMAFingerprint == e.VMAFingerprint}
		if r.SameName || r.SameKey {
			out = append(out, r)
		}
	}
	return out
}

// Enrollments lists enrollments matching f.
func (s *Service) Enrollments(ctx context.Context, f EnrollmentFilter) ([]Enrollment, error) {
	for _, st := range f.Statuses {
		if !st.Valid() {
			return nil, Errorf(CodeInvalidRequest, "unknown status %q", Printable(string(st)))
		}
	}
	return s.Store.ListEnrollments(ctx, f)
}

// Active lists approved VMAs with their connection state and the standing
// of their key under the key expiry policy.
func (s *Service) Active(ctx context.Context) ([]Connection, error) {
	list, err := s.Store.ListConnections(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	for i := range list {
		list[i].Key = s.KeyStanding(list[i].KeySince, now)
	}
	return list, nil
}

// MaxAuditLimit bounds one page of audit events.
const MaxAuditLimit = 1000

// Audit lists audit events matching f.
func (s *Service) Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	if f.EventType != "" && !f.EventType.Valid() {
		return nil, Errorf(CodeInvalidRequest, "unknown event type %q", Printable(string(f.EventType)))
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > MaxAuditLimit {
		return nil, Errorf(CodeInvalidRequest, "limit must be at most %d", MaxAuditLimit)
	}
	return s.Store.ListAudit(ctx, f)
}

// CreateAdminToken creates an admin token called name and returns it; the
// plain token is never stored and cannot be shown again. The actor is
// "system" (the first token a server creates); see CreateAdminTokenBy.
func (s *Service) CreateAdminToken(ctx context.Context, name string) (Secret, error) {
	return s.CreateAdminTokenBy(ctx, name, Meta{Actor: "system"})
}

// CreateAdminTokenBy creates an admin token called name on behalf of
// meta.Actor and audits it (actor and token name, never the token) in the
// same transaction.
func (s *Service) CreateAdminTokenBy(ctx context.Context, name string, meta Meta) (Secret, error) {
	if err := ValidateActorName(name); err != nil {
		return "", err
	}
	tok, err := NewToken(s.rand(), "oma_")
	if err != nil {
		return "", err
	}
	err = s.do(ctx, func(o *op) error {
		if err := o.tx.CreateAdminToken(ctx, &AdminToken{Name: name, TokenHash: HashSecret(tok), CreatedAt: o.now}); err != nil {
			return err
		}
		return o.audit(tokenAudit(EventAdminTokenCreated, meta), map[string]any{"token_name": name})
	})
	if err != nil {
		return "", err
	}
	return Secret(tok), nil
}

func tokenAudit(t EventType, meta Meta) *AuditEvent {
	return &AuditEvent{EventType: t, SourceIP: meta.SourceIP, UserAgent: truncateUTF8(meta.UserAgent, 255),
		ApprovedBy: truncateUTF8(meta.Actor, 255)}
}

// AuthenticateAdmin returns the name of the live admin token tok.
func (s *Service) AuthenticateAdmin(ctx context.Context, tok string) (string, error) {
	if tok == "" {
		return "", Errorf(CodeUnauthorized, "missing admin token: send 'Authorization: Bearer <token>' (omactl reads --token-file)")
	}
	t, err := s.Store.AdminTokenByHash(ctx, HashSecret(tok))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", Errorf(CodeUnauthorized, "admin token not recognised or revoked")
		}
		return "", err
	}
	if t.RevokedAt != nil {
		return "", Errorf(CodeUnauthorized, "admin token not recognised or revoked")
	}
	// Record the use for 'oma-server token list', at most once per
	// TokenTouchEvery per token: the row just read says when it was last
	// recorded, so busy tokens cost one write a minute, across instances.
	if now := s.now(); t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= TokenTouchEvery {
		if err := s.Store.TouchAdminToken(ctx, t.Name, now); err != nil && ctx.Err() == nil {
			s.Log.Warn("cannot record the use of an admin token", "token", t.Name, "err", err)
		}
	}
	return t.Name, nil
}

// TokenTouchEvery is how often at most the last use of an admin token is
// written.
const TokenTouchEvery = time.Minute

// RevokeAdminToken revokes the token called name, with "system" as the
// actor; see RevokeAdminTokenBy.
func (s *Service) RevokeAdminToken(ctx context.Context, name string) error {
	return s.RevokeAdminTokenBy(ctx, name, Meta{Actor: "system"})
}

// RevokeAdminTokenBy revokes the token called name on behalf of meta.Actor
// and audits it in the same transaction.
func (s *Service) RevokeAdminTokenBy(ctx context.Context, name string, meta Meta) error {
	return s.do(ctx, func(o *op) error {
		ok, err := o.tx.RevokeAdminToken(ctx, name, o.now)
		if err != nil {
			return err
		}
		if !ok {
			return Errorf(CodeNotFound, "no live admin token named %q", Printable(name))
		}
		return o.audit(tokenAudit(EventAdminTokenRevoked, meta), map[string]any{"token_name": name})
	})
}
