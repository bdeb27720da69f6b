package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/labels"
)

// Fleet endpoints (docs/fleet.md): pairing-code list and revoke, bulk
// decisions, and label selectors on the admin lists.

// selectorOf parses the ?selector= query parameter (kubectl syntax).
func selectorOf(r *http.Request) (labels.Selector, error) {
	sel, err := labels.ParseSelector(r.URL.Query().Get("selector"))
	if err != nil {
		return nil, badRequest("selector: %s", err.Error())
	}
	return sel, nil
}

// enrollmentLabels decodes an enrollment's label columns (a damaged column
// reads as no labels).
func enrollmentLabels(e *enroll.Enrollment) (admin, vma labels.Set) {
	admin, err := labels.Decode(e.Labels)
	if err != nil {
		admin = labels.Set{}
	}
	vma, err = labels.Decode(e.VMALabels)
	if err != nil {
		vma = labels.Set{}
	}
	return admin, vma
}

// selects reports whether sel matches e: the VMA's labels and the admin's,
// the admin's winning where both have a key.
func selects(sel labels.Selector, e *enroll.Enrollment) bool {
	if sel.Empty() {
		return true
	}
	admin, vma := enrollmentLabels(e)
	return sel.Matches(labels.Merge(vma, admin))
}

func filterEnrollments(sel labels.Selector, list []enroll.Enrollment) []enroll.Enrollment {
	if sel.Empty() {
		return list
	}
	out := list[:0:0]
	for i := range list {
		if selects(sel, &list[i]) {
			out = append(out, list[i])
		}
	}
	return out
}

// PairingCodeWith issues a pairing code with the fleet options.
func (s *Server) PairingCodeWith(ctx context.Context, opts enroll.CodeOptions, m enroll.Meta) (*api.PairingCodeResponse, error) {
	code, err := s.svc.CreatePairingCodeWith(ctx, opts, m)
	if err != nil {
		return nil, err
	}
	out := &api.PairingCodeResponse{
		PairingCode:    code.Code.Reveal(),
		ExpiresAt:      code.ExpiresAt,
		OMAFingerprint: s.Fingerprint(),
		JoinCommand:    fmt.Sprintf("vma-enroll --oma %s --code %s --fingerprint %s", s.cfg.JoinAddress, code.Code.Reveal(), s.Fingerprint()),
		ID:             code.ID,
	}
	if pc := code.Row; pc != nil {
		out.Uses, out.AutoApprove, out.FromCIDR = pc.MaxUses, pc.AutoApprove, pc.FromCIDR
		if l, _ := labels.Decode(pc.Labels); len(l) > 0 {
			out.Labels = l
		}
	}
	return out, nil
}

// PairingCodeInfo is the admin view of a stored code (never the code).
func (s *Server) PairingCodeInfo(pc *enroll.PairingCode) api.PairingCodeInfo {
	l, err := labels.Decode(pc.Labels)
	if err != nil {
		l = labels.Set{}
	}
	now := s.svc.Clock()
	state := "usable"
	switch {
	case pc.RevokedAt != nil:
		state = "revoked"
	case pc.UsesLeft() == 0:
		state = "spent"
	case !now.Before(pc.ExpiresAt):
		state = "expired"
	}
	left := pc.UsesLeft()
	if state != "usable" {
		left = 0
	}
	return api.PairingCodeInfo{
		ID: pc.ID, CodeHint: pc.CodeHint, Note: pc.Note, CreatedBy: pc.GeneratedBy, CreatedAt: pc.CreatedAt,
		ExpiresAt: pc.ExpiresAt, Uses: pc.MaxUses, UsesTaken: pc.UseCount, UsesLeft: left, Labels: l,
		AutoApprove: pc.AutoApprove, FromCIDR: pc.FromCIDR, RevokedAt: pc.RevokedAt, RevokedBy: pc.RevokedBy, State: state,
	}
}

// PairingCodes lists codes (usable ones, or all).
func (s *Server) PairingCodes(ctx context.Context, all bool) ([]api.PairingCodeInfo, error) {
	list, err := s.svc.PairingCodes(ctx, all)
	if err != nil {
		return nil, err
	}
	out := make([]api.PairingCodeInfo, 0, len(list))
	for i := range list {
		out = append(out, s.PairingCodeInfo(&list[i]))
	}
	return out, nil
}

func (s *Server) handlePairingCodes(w http.ResponseWriter, r *http.Request) {
	all := false
	switch v := r.URL.Query().Get("all"); v {
	case "", "false", "0":
	case "true", "1":
		all = true
	default:
		s.writeError(w, r, badRequest("all must be true or false"))
		return
	}
	out, err := s.PairingCodes(r.Context(), all)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.PairingCodeList{PairingCodes: out})
}

func (s *Server) handlePairingCodeRevoke(w http.ResponseWriter, r *http.Request) {
	if err := decode(w, r, &struct{}{}, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	pc, err := s.svc.RevokePairingCode(r.Context(), r.PathValue("id"), meta(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.PairingCodeInfo(pc))
}

// Bulk decides each id in its own transaction (approve, reject or revoke)
// and answers a result per id; a failed item never undoes the others.
func (s *Server) Bulk(ctx context.Context, action string, ids []string, text string, m enroll.Meta) (*api.BulkResponse, error) {
	var fn func(context.Context, string, string, enroll.Meta) (*enroll.Enrollment, error)
	switch action {
	case "approve":
		fn = s.Approve
	case "reject":
		fn = s.Reject
	case "revoke":
		fn = s.Revoke
	default:
		return nil, &enroll.Error{Code: enroll.CodeNotFound, Message: "bulk action must be approve, reject or revoke"}
	}
	if len(ids) == 0 {
		return nil, badRequest("ids: give at least one enrollment id")
	}
	if len(ids) > contract.MaxBulkItems {
		return nil, badRequest("ids: at most %d per request (got %d); split the list", contract.MaxBulkItems, len(ids))
	}
	out := &api.BulkResponse{Action: action, Results: make([]api.BulkResult, 0, len(ids))}
	for _, id := range ids {
		res := api.BulkResult{ID: enroll.Sanitize(id, 64)}
		if ctx.Err() != nil {
			res.HTTPStatus = http.StatusServiceUnavailable
			res.Error = &api.ErrorDetail{Code: enroll.CodeUnavailable, Message: "the request ended before this item was decided; run it again"}
			out.Results = append(out.Results, res)
			out.Failed++
			continue
		}
		e, err := fn(ctx, id, text, m)
		if err != nil {
			code := enroll.ErrorCode(err)
			res.HTTPStatus = api.HTTPStatus(code)
			if res.HTTPStatus >= 500 {
				s.log.Error("bulk item failed", "action", action, "enrollment_id", res.ID, "code", code, "err", err)
			}
			res.Error = &api.ErrorDetail{Code: code, Message: enroll.ErrorMessage(err)}
			out.Failed++
		} else {
			res.OK, res.HTTPStatus, res.Status, res.VMAName = true, http.StatusOK, string(e.Status), e.VMAName
			out.Succeeded++
		}
		out.Results = append(out.Results, res)
	}
	return out, nil
}

func (s *Server) handleBulk(w http.ResponseWriter, r *http.Request) {
	var req api.BulkRequest
	if err := decode(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	action := r.PathValue("action")
	text := req.Reason
	if action == "approve" {
		text = req.Notes
	}
	res, err := s.Bulk(r.Context(), action, req.IDs, text, meta(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// parseCodeRequest turns the JSON body into CodeOptions.
func parseCodeRequest(req api.PairingCodeRequest, ttl time.Duration) (enroll.CodeOptions, error) {
	l := labels.Set(req.Labels)
	if err := l.Validate(); err != nil {
		return enroll.CodeOptions{}, badRequest("labels: %s", err.Error())
	}
	if req.Uses < 0 || req.Uses > contract.CodeUsesLimit {
		return enroll.CodeOptions{}, badRequest("uses must be a positive number")
	}
	return enroll.CodeOptions{TTL: ttl, Note: req.Note, Uses: req.Uses, Labels: l,
		AutoApprove: req.AutoApprove, From: strings.TrimSpace(req.FromCIDR)}, nil
}
