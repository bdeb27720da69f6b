package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, api.ErrorBody{Error: api.ErrorDetail{Code: enroll.Code(code), Message: msg}})
}

func tlsServer(t *testing.T, h http.Handler) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv, SPKIFingerprint(srv.Certificate())
}

func TestPinnedTLS(t *testing.T) {
	srv, fp := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.HealthResponse{Status: "ok"})
	}))
	ctx := context.Background()

	c, err := New(Config{BaseURL: srv.URL, Fingerprint: strings.ToUpper(fp[:7]) + fp[7:]})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("Health with the right pin = %v, %v", h, err)
	}

	wrong := FingerprintPrefix + strings.Repeat("ab", 32)
	c, err = New(Config{BaseURL: srv.URL, Fingerprint: wrong})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Health(ctx)
	var fm *FingerprintMismatchError
	if !errors.As(err, &fm) {
		t.Fatalf("Health with a wrong pin: err = %v (%T), want *FingerprintMismatchError", err, err)
	}
	if fm.Got != fp || fm.Want != wrong {
		t.Fatalf("mismatch = %+v, want got %s", fm, fp)
	}
	if IsNetwork(err) || IsRetryable(err) {
		t.Fatalf("a fingerprint mismatch must not be retryable")
	}

	// Without pin or insecure the self-signed certificate fails the CA check.
	c, _ = New(Config{BaseURL: srv.URL})
	if _, err := c.Health(ctx); err == nil {
		t.Fatal("Health without pin against a self-signed certificate succeeded")
	}
	c, _ = New(Config{BaseURL: srv.URL, Insecure: true})
	if _, err := c.Health(ctx); err != nil {
		t.Fatalf("Health with insecure: %v", err)
	}

	got, err := FetchFingerprint(ctx, srv.Listener.Addr().String())
	if err != nil || got != fp {
		t.Fatalf("FetchFingerprint = %q, %v; want %q", got, err, fp)
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	hex := strings.Repeat("0a", 32)
	for _, in := range []string{"sha256:" + hex, "SHA256:" + strings.ToUpper(hex), " sha256:" + strings.Repeat("0a:", 31) + "0a "} {
		got, err := NormalizeFingerprint(in)
		if err != nil || got != "sha256:"+hex {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", hex, "sha256:abc", "sha256:" + strings.Repeat("zz", 32), "md5:" + hex} {
		if _, err := NormalizeFingerprint(in); err == nil {
			t.Errorf("NormalizeFingerprint(%q) accepted", in)
		}
	}
	if _, err := New(Config{BaseURL: "http://127.0.0.1:1", Fingerprint: "sha256:" + hex}); err == nil {
		t.Error("a pin with an http:// address was accepted")
	}
	for _, u := range []string{"", "127.0.0.1:8082", "ftp://x"} {
		if _, err := New(Config{BaseURL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}

func TestErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathEnroll, func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, 403, "pairing_code_rejected", "pairing code rejected")
	})
	mux.HandleFunc("GET "+api.PathPending, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			writeErr(w, 401, "unauthorized", "bad token")
			return
		}
		w.Header().Set("Retry-After", "7")
		writeErr(w, 429, "rate_limited", "slow down")
	})
	mux.HandleFunc("GET "+api.PathActive, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream down", http.StatusBadGateway)
	})
	mux.HandleFunc("GET "+api.PathHealth, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example/health", http.StatusFound)
	})
	mux.HandleFunc("GET "+api.PathAuditVerify, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html>not json</html>"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	c, _ := New(Config{BaseURL: srv.URL})
	_, err := c.Enroll(ctx, api.EnrollRequest{})
	if enroll.ErrorCode(err) != enroll.CodePairingCodeRejected || StatusCode(err) != 403 {
		t.Fatalf("Enroll err = %v, code %q, status %d", err, enroll.ErrorCode(err), StatusCode(err))
	}
	var ee *enroll.Error
	if !errors.As(err, &ee) || ee.Message != "pairing code rejected" {
		t.Fatalf("errors.As *enroll.Error = %v", ee)
	}
	if IsRetryable(err) {
		t.Fatal("403 is retryable")
	}

	if _, err := c.Pending(ctx); enroll.ErrorCode(err) != enroll.CodeUnauthorized {
		t.Fatalf("Pending without token: %v", err)
	}
	c, _ = New(Config{BaseURL: srv.URL, Token: "tok"})
	_, err = c.Pending(ctx)
	if enroll.ErrorCode(err) != "rate_limited" || RetryAfter(err) != 7*time.Second || !IsRetryable(err) {
		t.Fatalf("Pending: %v code %q retry-after %s", err, enroll.ErrorCode(err), RetryAfter(err))
	}
	_, err = c.Active(ctx)
	if enroll.ErrorCode(err) != enroll.CodeUnavailable || !IsRetryable(err) {
		t.Fatalf("Active through a bad gateway: %v", err)
	}
	_, err = c.AuditVerify(ctx)
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("AuditVerify with HTML: %v (%T)", err, err)
	}
	_, err = c.Health(ctx)
	if StatusCode(err) != 302 || !strings.Contains(err.Error(), "elsewhere.example") || IsRetryable(err) {
		t.Fatalf("Health redirected: %v (status %d)", err, StatusCode(err))
	}
}

func TestNetworkError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _ := New(Config{BaseURL: "http://" + addr})
	_, err = c.Health(context.Background())
	var ne *NetworkError
	if !errors.As(err, &ne) || !ne.Dial || !IsRetryable(err) {
		t.Fatalf("Health on a closed port: %v (%T)", err, err)
	}
}

func TestRequests(t *testing.T) {
	var seen []string
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
		switch {
		case r.URL.Path == api.PathResult:
			writeJSON(w, 200, api.ResultResponse{EnrollmentID: r.URL.Query().Get("enrollment_id"), Status: "awaiting_approval"})
		case strings.HasPrefix(r.URL.Path, api.PathApprove):
			var in api.ApproveRequest
			json.NewDecoder(r.Body).Decode(&in)
			writeJSON(w, 200, api.Enrollment{ID: strings.TrimPrefix(r.URL.Path, api.PathApprove), ApprovalNotes: in.Notes, Status: "approved"})
		case r.URL.Path == api.PathEnrollments:
			writeJSON(w, 200, api.EnrollmentList{})
		case r.URL.Path == api.PathAudit:
			writeJSON(w, 200, api.AuditList{})
		default:
			writeErr(w, 404, "not_found", "no")
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()
	c, _ := New(Config{BaseURL: srv.URL + "/", Token: "adm"})

	res, err := c.Result(ctx, "id-1", "poll", 25*time.Second)
	if err != nil || res.EnrollmentID != "id-1" {
		t.Fatalf("Result = %+v, %v", res, err)
	}
	e, err := c.Approve(ctx, "abc", "ok by me")
	if err != nil || e.ID != "abc" || e.ApprovalNotes != "ok by me" {
		t.Fatalf("Approve = %+v, %v", e, err)
	}
	list, err := c.Enrollments(ctx, EnrollmentFilter{VMAName: "vma 1", IDPrefix: "0123abcd"})
	if err != nil || list == nil {
		t.Fatalf("Enrollments = %v, %v", list, err)
	}
	since := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	al, err := c.Audit(ctx, AuditFilter{Since: since, Limit: 5, Cursor: "c1", Descending: true, EventType: "approval"})
	if err != nil || al.Events == nil {
		t.Fatalf("Audit = %v, %v", al, err)
	}
	want := []string{
		"GET /api/v1/vma/enroll/result?enrollment_id=id-1&wait=25s Bearer poll",
		"POST /api/v1/admin/vma/approve/abc Bearer adm",
		"GET /api/v1/admin/vma/enrollments?id_prefix=0123abcd&vma_name=vma+1 Bearer adm",
		"GET /api/v1/admin/vma/audit?cursor=c1&event_type=approval&limit=5&order=desc&since=2025-01-02T03%3A04%3A05Z Bearer adm",
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}

// The client reads answers itself: with and without a Content-Length, and
// never more than maxResponseBytes of them.
func TestAnswerBodies(t *testing.T) {
	list := `{"connections":[{"enrollment_id":"e1","vma_name":"a"},{"enrollment_id":"e2","vma_name":"b"}]}`
	mux := http.NewServeMux()
	mux.HandleFunc(api.PathActive, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("selector") {
		case "length":
			w.Header().Set("Content-Length", strconv.Itoa(len(list)))
			io.WriteString(w, list)
		case "chunked":
			io.WriteString(w, list[:10])
			w.(http.Flusher).Flush()
			io.WriteString(w, list[10:])
		case "huge-length":
			w.Header().Set("Content-Length", strconv.Itoa(maxResponseBytes+1))
			w.Write(make([]byte, 1024))
		case "huge-chunked":
			w.Write([]byte(`{"connections":[`))
			w.Write(bytes.Repeat([]byte(" "), maxResponseBytes))
			w.Write([]byte(`]}`))
		case "huge-error":
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write(bytes.Repeat([]byte("<p>busy</p>"), maxResponseBytes/8))
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, _ := New(Config{BaseURL: srv.URL, Token: "adm"})
	ctx := context.Background()
	for _, how := range []string{"length", "chunked"} {
		raw, err := c.ActiveFilteredJSON(ctx, how, "")
		if err != nil || !strings.HasPrefix(string(raw), `[{"enrollment_id":"e1"`) || !strings.HasSuffix(string(raw), `"b"}]`) {
			t.Errorf("%s: %s, %v", how, raw, err)
		}
		got, err := c.ActiveFiltered(ctx, how, "")
		if err != nil || len(got) != 2 || got[1].VMAName != "b" {
			t.Errorf("%s: %+v, %v", how, got, err)
		}
	}
	for _, how := range []string{"huge-length", "huge-chunked"} {
		if _, err := c.ActiveFilteredJSON(ctx, how, ""); err == nil || !strings.Contains(err.Error(), "over 16 MiB") {
			t.Errorf("%s: err = %v, want the size limit", how, err)
		}
	}
	// An error answer over the limit (a proxy's page) is still its status.
	var ae *APIError
	if _, err := c.ActiveFilteredJSON(ctx, "huge-error", ""); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
		t.Errorf("huge-error: err = %#v, want an APIError with status 503", err)
	}
}
