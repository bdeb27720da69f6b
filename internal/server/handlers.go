package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// publicMux serves the enrollment endpoints and /health, nothing else.
func (s *Server) publicMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(api.PathEnroll, s.rateLimit(s.methods(s.handleEnroll, http.MethodPost)))
	mux.Handle(api.PathVerify, s.rateLimit(s.methods(s.handleVerify, http.MethodPost)))
	mux.Handle(api.PathResult, s.rateLimit(s.methods(s.handleResult, http.MethodGet)))
	mux.HandleFunc(api.PathHealth, s.methods(s.handlePublicHealth, http.MethodGet))
	// VMA-authenticated (client certificate; vmaself.go).
	mux.Handle(api.PathVMASelf, s.rateLimit(s.methods(s.handleVMASelf, http.MethodGet)))
	mux.Handle(api.PathVMARotate, s.rateLimit(s.methods(s.handleVMARotate, http.MethodPost)))
	mux.HandleFunc("/", s.notFound)
	return s.common("public", securityHeaders(s.canonicalOnly(mux)))
}

// adminMux serves the admin API, /health and /metrics.
func (s *Server) adminMux() http.Handler {
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc, methods ...string) http.Handler {
		return s.adminAuth(s.methods(h, methods...))
	}
	mux.Handle(api.PathPairingCode, auth(s.handlePairingCode, http.MethodPost))
	mux.Handle(api.PathPending, auth(s.handlePending, http.MethodGet))
	mux.Handle(api.PathApprove+"{id}", auth(s.handleApprove, http.MethodPost))
	mux.Handle(api.PathReject+"{id}", auth(s.handleReject, http.MethodPost))
	mux.Handle(api.PathActive, auth(s.handleActive, http.MethodGet))
	mux.Handle(api.PathRevoke+"{id}", auth(s.handleRevoke, http.MethodDelete, http.MethodPost))
	mux.Handle(api.PathAudit, auth(s.handleAudit, http.MethodGet))
	mux.Handle(api.PathAuditVerify, auth(s.handleAuditVerify, http.MethodGet))
	mux.Handle(api.PathEnrollments, auth(s.handleEnrollments, http.MethodGet))
	mux.Handle(api.PathWhoami, auth(s.handleWhoami, http.MethodGet))
	mux.Handle(api.PathPairingCodes, auth(s.handlePairingCodes, http.MethodGet))
	mux.Handle(api.PathPairingCodeRevoke+"{id}", auth(s.handlePairingCodeRevoke, http.MethodPost, http.MethodDelete))
	mux.Handle(api.PathBulk+"{action}", auth(s.handleBulk, http.MethodPost))
	mux.Handle(api.PathMetrics, auth(s.metrics.handler().ServeHTTP, http.MethodGet))
	mux.HandleFunc(api.PathHealth, s.methods(s.handleAdminHealth, http.MethodGet))
	if s.ui != nil {
		mux.HandleFunc("/api/", s.notFound)
		mux.Handle("/", s.ui)
	} else {
		mux.HandleFunc("/", s.notFound)
	}
	return s.common("admin", securityHeaders(s.canonicalOnly(mux)))
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// --- public ---

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	ip := limitKey(clientIP(r.Context()))
	// The attempt counts as in flight until it is decided, so concurrent
	// requests cannot test more codes than the failure budget has left.
	end, wait, ok := s.codeLimit.Begin(ip)
	if !ok {
		s.tooMany(w, r, wait, "too many rejected pairing codes from your address")
		return
	}
	codeRefused := false
	defer func() { end(codeRefused) }()
	var req api.EnrollRequest
	if err := decode(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.svc.Enroll(r.Context(), enroll.EnrollRequest{
		PairingCode: req.PairingCode, PublicKey: req.VMAPublicKey, Name: req.VMAName, Version: req.VMAVersion,
		Labels: req.VMALabels,
	}, meta(r))
	s.metrics.step("enroll", err)
	if err != nil {
		if enroll.IsCodeFailure(err) {
			s.metrics.codeFailed.Inc()
			codeRefused = true
		}
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.EnrollResponse{
		EnrollmentID: res.EnrollmentID,
		Challenge:    base64.StdEncoding.EncodeToString(res.Challenge),
		Status:       string(res.Status),
		ExpiresAt:    res.ExpiresAt,
	})
}

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	var req api.VerifyRequest
	if err := decode(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.EnrollmentID == "" || req.Signature == "" {
		s.writeError(w, r, badRequest("enrollment_id and signature are required"))
		return
	}
	sig, err := base64.StdEncoding.DecodeString(req.Signature)
	if err != nil {
		s.writeError(w, r, enroll.Errorf(enroll.CodeInvalidSignature, "signature is not standard base64: %s", enroll.Printable(err.Error())))
		return
	}
	res, err := s.svc.Verify(r.Context(), req.EnrollmentID, sig, meta(r))
	s.metrics.step("verify", err)
	if err == nil && res.Approved != nil {
		// Pre-approved by its code: as an admin approval would.
		s.metrics.step("approve", nil)
		if s.reactions != nil {
			s.reactions.OnApprove(res.Approved)
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	exp := res.ExpiresAt
	writeJSON(w, http.StatusOK, api.VerifyResponse{EnrollmentID: res.EnrollmentID, Status: string(res.Status), PollToken: res.PollToken.Reveal(),
		ExpiresAt: &exp, ExpiresInSeconds: s.secondsLeft(&exp)})
}

func (s *Server) handleResult(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("enrollment_id")
	if id == "" {
		s.writeError(w, r, badRequest("query parameter enrollment_id is required"))
		return
	}
	var wait time.Duration
	if ws := q.Get("wait"); ws != "" {
		d, err := parseWait(ws)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		wait = d
	}
	tok, _ := bearer(r)
	if wait > 0 {
		ip := limitKey(clientIP(r.Context()))
		if !s.waiters.Acquire(ip) {
			s.tooMany(w, r, time.Second, "too many concurrent long polls from your address")
			return
		}
		defer s.waiters.Release(ip)
	}
	e, err := s.svc.Result(r.Context(), id, tok, wait)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res := api.ResultResponse{EnrollmentID: e.ID, Status: string(e.Status), VMAName: e.VMAName, ExpiresAt: e.ExpiresAt, ApprovedAt: e.ApprovedAt}
	switch e.Status {
	case enroll.StatusAwaitingApproval, enroll.StatusPendingVerification:
		res.ExpiresInSeconds = s.secondsLeft(e.ExpiresAt)
	case enroll.StatusApproved:
		res.Tunnel = s.tunnelFor(e)
	case enroll.StatusRejected:
		res.Reason = e.RejectionReason
		if res.Reason == "" {
			res.Reason = "rejected by the OMA admin"
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// secondsLeft is how long until exp by the server's clock (0 once passed),
// or nil without exp.
func (s *Server) secondsLeft(exp *time.Time) *int64 {
	if exp == nil {
		return nil
	}
	now := s.svc.Clock()
	n := max(int64(exp.Sub(now)/time.Second), 0)
	return &n
}

// parseWait accepts "25s", "1m" or plain seconds ("25").
func parseWait(s string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.Atoi(s); err == nil {
		// Bound n before multiplying: a huge n would wrap around int64.
		if n < 0 || n > int(api.MaxWait/time.Second) {
			return 0, badRequest("wait must be between 0s and %s", api.MaxWait)
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, badRequest("wait %q is not a duration: use e.g. 25s (at most %s)", enroll.Printable(s), api.MaxWait)
	}
	if d < 0 || d > api.MaxWait {
		return 0, badRequest("wait must be between 0s and %s", api.MaxWait)
	}
	return d, nil
}

func (s *Server) tunnelFor(e *enroll.Enrollment) *api.Tunnel {
	t := s.cfg.Tunnel
	out := &api.Tunnel{
		Host:    t.Host,
		Port:    t.Port,
		User:    t.User,
		HostKey: s.tunnelHostKey(),
		LocalForwards: []api.Forward{{
			Listen: t.NBDListen, Target: t.NBDTarget,
		}},
		RemoteForwards: []api.Forward{},
	}
	if e.TunnelPort != nil {
		out.RemoteForwards = append(out.RemoteForwards, api.Forward{
			Listen: fmt.Sprintf("127.0.0.1:%d", *e.TunnelPort), Target: t.VMAAPITarget,
		})
	}
	return out
}

// handlePublicHealth answers 503 while the database is unreachable, so a
// load balancer takes the instance out; the answer comes from a check made
// at most once a second (see dbCheck), so probes from the internet cannot
// make the server ping its database at their rate.
func (s *Server) handlePublicHealth(w http.ResponseWriter, r *http.Request) {
	if !s.dbCheck.ok(r.Context(), s.store.Ping) {
		writeJSON(w, http.StatusServiceUnavailable, api.HealthResponse{Status: "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, api.HealthResponse{Status: "ok"})
}

// --- admin ---

func (s *Server) handleAdminHealth(w http.ResponseWriter, r *http.Request) {
	if err := s.store.Ping(r.Context()); err != nil {
		s.log.Warn("health: database unreachable", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, api.HealthResponse{Status: "unavailable", Database: "unreachable"})
		return
	}
	h := api.HealthResponse{Status: "ok", Database: "ok"}
	if sv, ok := s.store.(interface {
		SchemaVersion(context.Context) (uint, bool, error)
	}); ok {
		if v, dirty, err := sv.SchemaVersion(r.Context()); err == nil {
			h.SchemaVersion, h.SchemaDirty = &v, dirty
			if dirty {
				h.Status = "degraded"
			}
		}
	}
	if s.cfg.TunnelState != nil {
		ts := s.cfg.TunnelState()
		h.Tunnel = &ts
	}
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) handlePairingCode(w http.ResponseWriter, r *http.Request) {
	var req api.PairingCodeRequest
	if err := decode(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.TTLSeconds < 0 {
		s.writeError(w, r, badRequest("ttl_seconds must be positive"))
		return
	}
	// Bound it before converting: a huge value would wrap around int64
	// into the allowed range.
	if int64(req.TTLSeconds) > int64(math.MaxInt64/time.Second) {
		s.writeError(w, r, badRequest("ttl_seconds %d is out of range", req.TTLSeconds))
		return
	}
	opts, err := parseCodeRequest(req, time.Duration(req.TTLSeconds)*time.Second)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.PairingCodeWith(r.Context(), opts, meta(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, res)
}

// The admin operations below carry the server's side effects (metrics,
// the Reactions of the tunnel driver) around the service call; the JSON API and the web UI both
// go through them.

// PairingCode issues a pairing code (ttl 0: the default) and returns what
// the admin hands out: the code, the OMA fingerprint and the join command.
func (s *Server) PairingCode(ctx context.Context, ttl time.Duration, note string, m enroll.Meta) (*api.PairingCodeResponse, error) {
	code, err := s.svc.CreatePairingCode(ctx, ttl, note, m)
	if err != nil {
		return nil, err
	}
	return &api.PairingCodeResponse{
		PairingCode:    code.Code.Reveal(),
		ExpiresAt:      code.ExpiresAt,
		OMAFingerprint: s.Fingerprint(),
		JoinCommand:    fmt.Sprintf("vma-enroll --oma %s --code %s --fingerprint %s", s.cfg.JoinAddress, code.Code.Reveal(), s.Fingerprint()),
	}, nil
}

// Approve approves enrollment id and tells the Reactions (the tunnel driver).
func (s *Server) Approve(ctx context.Context, id, notes string, m enroll.Meta) (*enroll.Enrollment, error) {
	e, err := s.svc.Approve(ctx, id, notes, m)
	s.metrics.step("approve", err)
	if err == nil && s.reactions != nil {
		s.reactions.OnApprove(e)
	}
	return e, err
}

// Reject rejects enrollment id.
func (s *Server) Reject(ctx context.Context, id, reason string, m enroll.Meta) (*enroll.Enrollment, error) {
	e, err := s.svc.Reject(ctx, id, reason, m)
	s.metrics.step("reject", err)
	return e, err
}

// Revoke revokes enrollment id and tells the Reactions (the tunnel driver,
// which drops the VMA's live tunnel).
func (s *Server) Revoke(ctx context.Context, id, reason string, m enroll.Meta) (*enroll.Enrollment, error) {
	e, err := s.svc.Revoke(ctx, id, reason, m)
	s.metrics.step("revoke", err)
	if err == nil && s.reactions != nil {
		s.reactions.OnRevoke(e)
	}
	return e, err
}

func (s *Server) handlePending(w http.ResponseWriter, r *http.Request) {
	sel, err := selectorOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, repl, err := s.svc.PendingWithReplacements(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list = filterEnrollments(sel, list)
	out := toAPIEnrollments(list)
	for i := range out {
		for _, x := range repl[out[i].ID] {
			out[i].Replaces = append(out[i].Replaces, api.Replacement{EnrollmentID: x.EnrollmentID, VMAName: x.VMAName, SameName: x.SameName, SameKey: x.SameKey})
		}
	}
	writeJSON(w, http.StatusOK, api.EnrollmentList{Enrollments: out})
}

func (s *Server) handleEnrollments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := enroll.EnrollmentFilter{VMAName: q.Get("vma_name"), IDPrefix: strings.ToLower(q.Get("id_prefix"))}
	sel, err := selectorOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, st := range q["status"] {
		for _, p := range strings.Split(st, ",") {
			if p != "" {
				f.Statuses = append(f.Statuses, enroll.Status(p))
			}
		}
	}
	if f.IDPrefix != "" && strings.Trim(f.IDPrefix, "0123456789abcdef-") != "" {
		s.writeError(w, r, badRequest("id_prefix must be hex digits and dashes"))
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			s.writeError(w, r, badRequest("limit must be a number from 1 to 10000"))
			return
		}
		f.Limit = n
	}
	limit := 0
	if !sel.Empty() {
		// The selector filters here, so the limit applies after it.
		limit, f.Limit = f.Limit, 0
	}
	list, err := s.svc.Enrollments(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list = filterEnrollments(sel, list)
	if limit > 0 && len(list) > limit {
		list = list[:limit]
	}
	out := toAPIEnrollments(list)
	if err := s.addKeyStandings(r.Context(), list, out); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.EnrollmentList{Enrollments: out})
}

// handleWhoami names the admin token of the request ('omactl auth status').
func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.WhoamiResponse{TokenName: actor(r.Context())})
}

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) {
	var req api.ApproveRequest
	if err := decode(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := s.Approve(r.Context(), r.PathValue("id"), req.Notes, meta(r))
	s.renderEnrollment(w, r, e, err)
}

func (s *Server) handleReject(w http.ResponseWriter, r *http.Request) {
	var req api.ReasonRequest
	if err := decode(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := s.Reject(r.Context(), r.PathValue("id"), req.Reason, meta(r))
	s.renderEnrollment(w, r, e, err)
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req api.ReasonRequest
	if err := decode(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := s.Revoke(r.Context(), r.PathValue("id"), req.Reason, meta(r))
	s.renderEnrollment(w, r, e, err)
}

func (s *Server) renderEnrollment(w http.ResponseWriter, r *http.Request, e *enroll.Enrollment, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIEnrollment(e))
}

func (s *Server) handleActive(w http.ResponseWriter, r *http.Request) {
	sel, err := selectorOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	keyStatuses, err := keyStatusesOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.svc.Active(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := api.ConnectionList{Connections: make([]api.Connection, 0, len(list))}
	for _, c := range list {
		conn := api.Connection{
			EnrollmentID: c.EnrollmentID, VMAName: c.VMAName, VMAFingerprint: c.VMAFingerprint, SSHUser: c.SSHUser,
			ConnectionStatus: c.ConnectionStatus, TunnelPort: c.TunnelPort, RemoteAddr: c.RemoteAddr,
			LastSeenAt: c.LastSeenAt, ConnectedAt: c.ConnectedAt, SourceIP: hostOf(c.RemoteAddr),
			KeyStatus: string(enroll.KeyOK),
		}
		if k := c.Key; k != nil {
			since := k.Since
			conn.KeySince, conn.KeyAgeSeconds, conn.KeyStatus = &since, int64(k.Age.Seconds()), string(k.Status)
			conn.KeyRotateAfter, conn.KeyExpiresAt, conn.KeyRefusedAfter = k.RotateAfter, k.ExpiresAt, k.RefusedAfter
		}
		if !keyStatuses.has(conn.KeyStatus) {
			continue
		}
		// The labels come with the list (the store reads them with each
		// connection's enrollment): no second query over the enrollments.
		e := &enroll.Enrollment{ID: c.EnrollmentID, Labels: c.Labels, VMALabels: c.VMALabels}
		admin, vma := enrollmentLabels(e)
		if len(admin) > 0 {
			conn.Labels = admin
		}
		if len(vma) > 0 {
			conn.VMALabels = vma
		}
		if !sel.Empty() && !selects(sel, e) {
			continue
		}
		out.Connections = append(out.Connections, conn)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	f, err := parseAuditFilter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	events, err := s.svc.Audit(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := api.AuditList{Events: make([]api.AuditEvent, 0, len(events))}
	for i := range events {
		ev := &events[i]
		out.Events = append(out.Events, api.AuditEvent{
			ID: ev.ID, EnrollmentID: ev.EnrollmentID, EventType: string(ev.EventType), VMAName: ev.VMAName,
			VMAFingerprint: ev.VMAFingerprint, SourceIP: ev.SourceIP, UserAgent: ev.UserAgent,
			ApprovedBy: ev.ApprovedBy, EventDetails: ev.Details(), CreatedAt: ev.CreatedAt, Actor: ev.ApprovedBy,
		})
	}
	if len(events) == f.Limit && len(events) > 0 {
		out.NextCursor = strconv.FormatInt(events[len(events)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, out)
}

func parseAuditFilter(r *http.Request) (enroll.AuditFilter, error) {
	q := r.URL.Query()
	f := enroll.AuditFilter{
		EventType:    enroll.EventType(q.Get("event_type")),
		EnrollmentID: strings.ToLower(q.Get("enrollment_id")),
		VMAName:      q.Get("vma_name"),
		Limit:        100,
	}
	var err error
	if f.Since, err = parseTimeParam(q.Get("since"), "since"); err != nil {
		return f, err
	}
	if f.Until, err = parseTimeParam(q.Get("until"), "until"); err != nil {
		return f, err
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > enroll.MaxAuditLimit {
			return f, badRequest("limit must be a number from 1 to %d", enroll.MaxAuditLimit)
		}
		f.Limit = n
	}
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		f.Descending = true
	default:
		return f, badRequest("order must be asc or desc")
	}
	if c := q.Get("cursor"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n < 0 {
			return f, badRequest("cursor %q is not one this server returned", enroll.Printable(c))
		}
		if f.Descending {
			f.Before = n
		} else {
			f.After = n
		}
	}
	if f.EnrollmentID != "" {
		if _, err := enroll.NormalizeID(f.EnrollmentID); err != nil {
			return f, err
		}
	}
	return f, nil
}

// parseTimeParam accepts RFC 3339 or a duration meaning "that long ago".
func parseTimeParam(v, name string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		t = t.UTC()
		return &t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		t := time.Now().UTC().Add(-d)
		return &t, nil
	}
	return nil, badRequest("%s %q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a duration (24h)", name, enroll.Printable(v))
}

func (s *Server) handleAuditVerify(w http.ResponseWriter, r *http.Request) {
	rep, err := s.svc.VerifyAudit(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := api.ChainReport{OK: rep.OK, Checked: rep.Checked, HeadID: rep.HeadID}
	if rep.Break != nil {
		out.BreakID, out.Reason = rep.Break.ID, rep.Break.Reason
	}
	writeJSON(w, http.StatusOK, out)
}

func toAPIEnrollments(list []enroll.Enrollment) []api.Enrollment {
	out := make([]api.Enrollment, 0, len(list))
	for i := range list {
		out = append(out, toAPIEnrollment(&list[i]))
	}
	return out
}

func toAPIEnrollment(e *enroll.Enrollment) api.Enrollment {
	admin, vma := enrollmentLabels(e)
	return api.Enrollment{
		PairingCodeID: e.PairingCodeID, Labels: admin, VMALabels: vma,
		ID: e.ID, VMAName: e.VMAName, VMAVersion: e.VMAVersion, VMAFingerprint: e.VMAFingerprint,
		VMAIPAddress: e.VMAIPAddress, Status: string(e.Status), ApprovedBy: e.ApprovedBy, ApprovedAt: e.ApprovedAt,
		ApprovalNotes: e.ApprovalNotes, RejectedBy: e.RejectedBy, RejectionReason: e.RejectionReason,
		RevokedBy: e.RevokedBy, RevokedAt: e.RevokedAt, RevocationReason: e.RevocationNote,
		TunnelPort: e.TunnelPort, VerifiedAt: e.VerifiedAt, ExpiresAt: e.ExpiresAt,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, SourceIP: e.VMAIPAddress,
	}
}

// hostOf is the address part of host:port (all of s when it has no port).
func hostOf(s string) string {
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}
