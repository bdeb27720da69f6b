package webui

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// --- sign-in ---

type signInData struct {
	Next    string
	Error   string
	Notice  string
	Retry   int
	Limited bool
}

func (u *UI) handleSignInPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if _, err := u.session(r); err == nil {
		u.redirect(w, r, safeNext(q.Get("next")))
		return
	}
	d := signInData{Next: safeNext(q.Get("next"))}
	switch {
	case q.Get("signed_out") == "1":
		d.Notice = "You have signed out."
	case q.Get("ended") == "1":
		d.Notice = "Your session has ended (it was idle too long, reached its time limit, the server restarted, or the token was revoked). Sign in again."
	}
	u.render(w, r, http.StatusOK, "signin", u.newView(r, nil, "", "Sign in", d))
}

func (u *UI) handleSignIn(w http.ResponseWriter, r *http.Request) {
	ip := u.cfg.ClientIP(r)
	if !sameOrigin(r) {
		u.message(w, r, nil, http.StatusForbidden, "Request refused", "The sign-in did not come from this page (cross-site request).")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, api.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		u.message(w, r, nil, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	d := signInData{Next: safeNext(r.PostForm.Get("next"))}
	now := u.now()
	// The limiter bounds failures, never a correct token: while an address
	// has spent its failures, a wrong token is answered 429 (and not looked
	// at further), but the right one still signs in, so five typos (or
	// someone else behind the same address) cannot lock the admin out.
	// Admin tokens carry 256 random bits: guessing is no threat; the limit
	// bounds the lookups, log lines and noise a client can cause.
	wait, blocked := u.limiter.blocked(ip, now)
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	name, err := u.svc.AuthenticateAdmin(r.Context(), tok)
	if err != nil {
		if enroll.ErrorCode(err) != enroll.CodeUnauthorized {
			u.serverError(w, r, err)
			return
		}
		if blocked {
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			d.Error = fmt.Sprintf("Too many failed sign-ins from your address. Wait %d seconds and try again.", secs)
			d.Limited, d.Retry = true, secs
			u.log.Warn("web UI sign-in rate limited", "client_ip", ip)
			u.render(w, r, http.StatusTooManyRequests, "signin", u.newView(r, nil, "", "Sign in", d))
			return
		}
		u.limiter.fail(ip, now)
		u.log.Warn("web UI sign-in failed: admin token not recognised or revoked", "client_ip", ip)
		d.Error = "That admin token is not recognised or was revoked."
		if tok == "" {
			d.Error = "Enter an admin token."
		}
		u.render(w, r, http.StatusUnauthorized, "signin", u.newView(r, nil, "", "Sign in", d))
		return
	}
	if old := readSessionCookie(r); old != "" {
		u.sessions.delete(hashKey(old)) // a sign-in always starts a new session
	}
	id := u.sessions.create(name, enroll.HashSecret(tok), now)
	setSessionCookie(w, r, id)
	u.cfg.SetActor(r, name)
	u.log.Info("web UI sign-in", "actor", name, "client_ip", ip)
	u.redirect(w, r, d.Next)
}

func (u *UI) handleSignOut(w http.ResponseWriter, r *http.Request, se *session) {
	u.sessions.delete(se.key)
	clearSessionCookie(w, r)
	u.log.Info("web UI sign-out", "actor", se.Actor, "client_ip", u.cfg.ClientIP(r))
	u.redirect(w, r, "/signin?signed_out=1")
}

// --- pending ---

type pendingData struct {
	Enrollments []enroll.Enrollment
	// Replaces names, by enrollment id, the approved VMAs that approving
	// it revokes (same name or same key).
	Replaces map[string][]enroll.Replacement
	Version  string
}

func (u *UI) handlePending(w http.ResponseWriter, r *http.Request, se *session) {
	list, repl, err := u.svc.PendingWithReplacements(r.Context())
	if err != nil {
		u.serverError(w, r, err)
		return
	}
	v := u.newView(r, se, "pending", "Pending", pendingData{Enrollments: list, Replaces: repl, Version: pendingVersion(list)})
	v.PendingCount = len(list)
	u.render(w, r, http.StatusOK, "pending", v)
}

// confirmData is the data of the confirmation page that forms posted
// without JavaScript get (with JavaScript a dialog asks instead).
type confirmData struct {
	Action  string // URL to post to
	Verb    string // "Approve", "Reject", "Revoke"
	Field   string // "notes" or "reason"
	Value   string
	Back    string
	E       *enroll.Enrollment
	Warning string
}

func (u *UI) transition(w http.ResponseWriter, r *http.Request, se *session, verb, field, back string,
	do func(id, text string, m enroll.Meta) (*enroll.Enrollment, error), done func(e *enroll.Enrollment) string) {
	id := r.PathValue("id")
	text := strings.TrimSpace(r.PostForm.Get(field))
	if r.PostForm.Get("confirmed") != "1" {
		e, err := u.svc.Get(r.Context(), id)
		if err != nil {
			u.fail(w, r, se, back, err)
			return
		}
		d := confirmData{Action: r.URL.Path, Verb: verb, Field: field, Value: text, Back: back, E: e}
		switch verb {
		case "Approve":
			d.Warning = "Compare the key fingerprint with the one vma-enroll shows on the VMA's console before you approve."
		case "Revoke":
			d.Warning = "The VMA's key stops working at once and its live tunnel is closed."
		}
		u.render(w, r, http.StatusOK, "confirm", u.newView(r, se, back[1:], verb+" "+e.VMAName, d))
		return
	}
	e, err := do(id, text, u.meta(r, se))
	if err != nil {
		u.fail(w, r, se, back, err)
		return
	}
	u.sessions.addFlash(se.key, "ok", done(e))
	u.redirect(w, r, back)
}

// fail shows a refused or failed action on the page it came from.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, se *session, back string, err error) {
	if enroll.ErrorCode(err) == enroll.CodeInternal || enroll.ErrorCode(err) == enroll.CodeUnavailable {
		u.serverError(w, r, err)
		return
	}
	u.sessions.addFlash(se.key, "error", enroll.ErrorMessage(err))
	u.redirect(w, r, back)
}

func (u *UI) handleApprove(w http.ResponseWriter, r *http.Request, se *session) {
	u.transition(w, r, se, "Approve", "notes", "/pending",
		func(id, text string, m enroll.Meta) (*enroll.Enrollment, error) {
			return u.act.Approve(r.Context(), id, text, m)
		},
		func(e *enroll.Enrollment) string {
			port := ""
			if e.TunnelPort != nil {
				port = fmt.Sprintf(" with tunnel port %d", *e.TunnelPort)
			}
			return fmt.Sprintf("Approved %s%s. vma-enroll on the VMA now writes its tunnel configuration.", e.VMAName, port)
		})
}

func (u *UI) handleReject(w http.ResponseWriter, r *http.Request, se *session) {
	u.transition(w, r, se, "Reject", "reason", "/pending",
		func(id, text string, m enroll.Meta) (*enroll.Enrollment, error) {
			return u.act.Reject(r.Context(), id, text, m)
		},
		func(e *enroll.Enrollment) string { return fmt.Sprintf("Rejected %s.", e.VMAName) })
}

// --- active ---

type activeData struct {
	Connections []enroll.Connection
	Version     string
}

func (u *UI) handleActive(w http.ResponseWriter, r *http.Request, se *session) {
	list, err := u.svc.Active(r.Context())
	if err != nil {
		u.serverError(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "active", u.newView(r, se, "active", "Active", activeData{Connections: list, Version: activeVersion(list)}))
}

func (u *UI) handleRevoke(w http.ResponseWriter, r *http.Request, se *session) {
	u.transition(w, r, se, "Revoke", "reason", "/active",
		func(id, text string, m enroll.Meta) (*enroll.Enrollment, error) {
			return u.act.Revoke(r.Context(), id, text, m)
		},
		func(e *enroll.Enrollment) string {
			return fmt.Sprintf("Revoked %s. Its key no longer opens a tunnel.", e.VMAName)
		})
}

// --- pairing code ---

type ttlOption struct {
	Value    string
	Label    string
	Selected bool
}

type pairingData struct {
	TTLs       []ttlOption
	Code       *api.PairingCodeResponse
	TTL        string
	Remaining  int64
	Expired    bool
	DefaultTTL string
	// Codes are the usable codes (never the codes themselves); pre-approved
	// ones are shown prominently (docs/fleet.md).
	Codes []enroll.PairingCode
}

func ttlLabel(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hour%s", d/time.Hour, plural(int64(d/time.Hour)))
	case d%time.Minute == 0:
		return fmt.Sprintf("%d minute%s", d/time.Minute, plural(int64(d/time.Minute)))
	}
	return d.String()
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (u *UI) ttlOptions(selected time.Duration) []ttlOption {
	def := u.cfg.CodeTTL
	if selected == 0 {
		selected = def
	}
	cands := []time.Duration{5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 24 * time.Hour}
	seen := false
	var out []ttlOption
	for _, d := range cands {
		if !seen && def < d {
			out = append(out, ttlOption{Value: def.String(), Label: ttlLabel(def) + " (default)", Selected: selected == def})
			seen = true
		}
		if d == def {
			seen = true
			out = append(out, ttlOption{Value: d.String(), Label: ttlLabel(d) + " (default)", Selected: selected == d})
			continue
		}
		if d > u.cfg.MaxCodeTTL {
			continue
		}
		out = append(out, ttlOption{Value: d.String(), Label: ttlLabel(d), Selected: selected == d})
	}
	if !seen {
		out = append(out, ttlOption{Value: def.String(), Label: ttlLabel(def) + " (default)", Selected: selected == def})
	}
	return out
}

func (u *UI) handlePairingPage(w http.ResponseWriter, r *http.Request, se *session) {
	now := u.now()
	d := pairingData{TTLs: u.ttlOptions(se.CodeTTL), DefaultTTL: ttlLabel(u.cfg.CodeTTL)}
	if se.Code != nil {
		d.Code, d.TTL = se.Code, ttlLabel(se.CodeTTL)
		d.Remaining = int64(math.Max(0, math.Ceil(se.Code.ExpiresAt.Sub(now).Seconds())))
		d.Expired = d.Remaining == 0
		if now.Sub(se.Code.ExpiresAt) > time.Hour {
			u.sessions.update(se.key, func(s *session) { s.Code = nil })
			d.Code = nil
		}
	}
	if codes, err := u.svc.PairingCodes(r.Context(), false); err == nil {
		d.Codes = codes
	}
	u.render(w, r, http.StatusOK, "pairing", u.newView(r, se, "pairing", "Pairing code", d))
}

func (u *UI) handlePairingCode(w http.ResponseWriter, r *http.Request, se *session) {
	ttl := u.cfg.CodeTTL
	if s := r.PostForm.Get("ttl"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			u.fail(w, r, se, "/pairing-code", enroll.Errorf(enroll.CodeInvalidRequest, "lifetime %q is not a duration", enroll.Printable(s)))
			return
		}
		ttl = d
	}
	res, err := u.act.PairingCode(r.Context(), ttl, strings.TrimSpace(r.PostForm.Get("note")), u.meta(r, se))
	if err != nil {
		u.fail(w, r, se, "/pairing-code", err)
		return
	}
	u.sessions.update(se.key, func(s *session) { s.Code, s.CodeTTL = res, ttl })
	u.redirect(w, r, "/pairing-code")
}

// --- audit ---

const auditPageSize = 50

type auditData struct {
	Events     []enroll.AuditEvent
	Types      []enroll.EventType
	Type       string
	VMA        string
	Enrollment string
	Since      string
	Until      string
	Error      string
	Chain      *enroll.ChainReport
	ChainErr   string
	Newer      string // URL of the newer page, if any
	Older      string // URL of the older page, if any
	Newest     string // URL of the newest page, when not on it
	First      bool   // the newest page (refreshes by itself)
	Version    string
}

// link is the audit URL with the current filters and one paging cursor.
func (d *auditData) link(cursor string, id int64) string {
	p := url.Values{}
	for _, kv := range [][2]string{{"type", d.Type}, {"vma", d.VMA}, {"enrollment", d.Enrollment}, {"since", d.Since}, {"until", d.Until}} {
		if kv[1] != "" {
			p.Set(kv[0], kv[1])
		}
	}
	if cursor != "" {
		p.Set(cursor, strconv.FormatInt(id, 10))
	}
	if len(p) == 0 {
		return "/audit"
	}
	return "/audit?" + p.Encode()
}

// chainStatus caches the chain check by head id (it walks every row).
type chainStatus struct {
	head    int64
	at      time.Time
	report  *enroll.ChainReport
	checked bool
}

func (u *UI) chainReport(r *http.Request, head int64) (*enroll.ChainReport, error) {
	now := u.now()
	u.chainMu.Lock()
	defer u.chainMu.Unlock()
	if u.chain.checked && u.chain.head == head && now.Sub(u.chain.at) < time.Minute {
		return u.chain.report, nil
	}
	rep, err := u.svc.VerifyAudit(r.Context())
	if err != nil {
		return nil, err
	}
	u.chain = chainStatus{head: head, at: now, report: rep, checked: true}
	return rep, nil
}

// parseWhen accepts a duration ("24h": that long ago), RFC 3339, or a date
// and time without zone (as a datetime-local field sends it), read as UTC.
func parseWhen(s string, now time.Time) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		t := now.Add(-d)
		return &t, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return nil, fmt.Errorf("%q is neither a duration (24h) nor a time (2026-01-02T15:04, UTC)", enroll.Printable(s))
}

func (u *UI) handleAudit(w http.ResponseWriter, r *http.Request, se *session) {
	q := r.URL.Query()
	now := u.now()
	d := auditData{Types: enroll.EventTypes, Type: q.Get("type"), VMA: strings.TrimSpace(q.Get("vma")),
		Enrollment: strings.TrimSpace(q.Get("enrollment")), Since: q.Get("since"), Until: q.Get("until")}
	f := enroll.AuditFilter{EventType: enroll.EventType(d.Type), VMAName: d.VMA, Limit: auditPageSize + 1, Descending: true}
	var errs []string
	if d.Type != "" && !f.EventType.Valid() {
		errs = append(errs, fmt.Sprintf("unknown event type %q", enroll.Printable(d.Type)))
	}
	if d.Enrollment != "" {
		id, err := enroll.NormalizeID(d.Enrollment)
		if err != nil {
			errs = append(errs, enroll.ErrorMessage(err))
		}
		f.EnrollmentID = id
	}
	var err error
	if f.Since, err = parseWhen(d.Since, now); err != nil {
		errs = append(errs, "since: "+err.Error())
	}
	if f.Until, err = parseWhen(d.Until, now); err != nil {
		errs = append(errs, "until: "+err.Error())
	}
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
	switch {
	case after > 0:
		f.After, f.Descending = after, false
	case before > 0:
		f.Before = before
	}
	d.First = after <= 0 && before <= 0
	if len(errs) > 0 {
		d.Error = strings.Join(errs, "; ")
	} else {
		events, err := u.svc.Audit(r.Context(), f)
		if err != nil {
			if enroll.ErrorCode(err) == enroll.CodeInternal || enroll.ErrorCode(err) == enroll.CodeUnavailable {
				u.serverError(w, r, err)
				return
			}
			d.Error = enroll.ErrorMessage(err)
		}
		more := len(events) > auditPageSize
		if more {
			events = events[:auditPageSize]
		}
		if !f.Descending { // a newer page was asked for: show it newest first
			for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
				events[i], events[j] = events[j], events[i]
			}
		}
		d.Events = events
		if n := len(events); n > 0 {
			if !f.Descending || more {
				d.Older = d.link("before", events[n-1].ID)
			}
			if (f.Descending && before > 0) || (!f.Descending && more) {
				d.Newer = d.link("after", events[0].ID)
			}
		}
	}
	if !d.First {
		d.Newest = d.link("", 0)
	}
	head, _, err := u.store.AuditHead(r.Context())
	if err != nil {
		u.serverError(w, r, err)
		return
	}
	d.Version = strconv.FormatInt(head, 10)
	rep, err := u.chainReport(r, head)
	if err != nil {
		u.log.Error("audit chain check failed", "err", err)
		d.ChainErr = enroll.ErrorMessage(err)
	}
	d.Chain = rep
	status := http.StatusOK
	if d.Error != "" {
		status = http.StatusBadRequest
	}
	u.render(w, r, status, "audit", u.newView(r, se, "audit", "Audit", d))
}
