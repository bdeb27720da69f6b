package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/store"
)

// fuzzServer is a server over a real SQLite store, serving requests through
// its real handlers (no listeners), with an admin token and one enrollment
// awaiting approval to aim the admin requests at.
type fuzzServer struct {
	public, admin http.Handler
	token         string
	id            string // an enrollment awaiting approval
}

func newFuzzServer(f *testing.F) *fuzzServer {
	f.Helper()
	ctx := context.Background()
	dsn := filepath.Join(f.TempDir(), "fuzz.db")
	if err := store.MigrateUp(ctx, store.DriverSQLite, dsn); err != nil {
		f.Fatal(err)
	}
	db, err := store.Open(ctx, store.DriverSQLite, dsn, store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	svc := enroll.New(db, enroll.Config{}, bytes.Repeat([]byte{1}, 32), nil)
	cert, err := LoadOrCreateCertificate("", "", f.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		f.Fatal(err)
	}
	// Limits high enough that fuzzing explores the handlers, not the 429.
	s, err := New(Config{TLS: cert, RatePerSecond: 1e9, RateBurst: 1e9, CodeFailuresPerMinute: 1e12, CodeFailureBurst: 1e9}, svc, db, nil)
	if err != nil {
		f.Fatal(err)
	}
	tok, err := svc.CreateAdminToken(ctx, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	code, err := svc.CreatePairingCode(ctx, 0, "", enroll.Meta{Actor: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	// A VMA key whose private half is known, to reach awaiting_approval.
	res, err := svc.Enroll(ctx, enroll.EnrollRequest{PairingCode: code.Code.Reveal(), PublicKey: fuzzVMAPub, Name: "fuzz-vma"}, enroll.Meta{SourceIP: "192.0.2.1"})
	if err != nil {
		f.Fatal(err)
	}
	return &fuzzServer{public: s.publicMux(), admin: s.adminMux(), token: tok.Reveal(), id: res.EnrollmentID}
}

// fuzzVMAPub is a valid ssh-ed25519 key (from a fixed seed).
var fuzzVMAPub = sshkey.AuthorizedKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey), "fuzz")

// serve sends one request through h and checks the answer: never a 5xx,
// and every error is the JSON envelope with a code.
func serve(t *testing.T, h http.Handler, r *http.Request) {
	t.Helper()
	r.RemoteAddr = "192.0.2.1:40000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code >= 500 {
		t.Fatalf("%s %s: status %d: %s", r.Method, r.URL, w.Code, w.Body.Bytes())
	}
	if w.Code >= 400 {
		var eb api.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Fatalf("%s %s: status %d with a body that is not the error envelope: %q", r.Method, r.URL, w.Code, w.Body.Bytes())
		}
	}
}

// FuzzPublicRequest feeds arbitrary bytes through the public listener's
// handlers: as the body of enroll and verify, and as the query of result.
func FuzzPublicRequest(f *testing.F) {
	for _, s := range []struct {
		endpoint uint8
		data     string
	}{
		{0, `{"pairing_code":"ABCD-EFGH-JKMN","vma_public_key":"` + fuzzVMAPub + `","vma_name":"vma-1","vma_version":"1.0"}`},
		{0, `{"pairing_code":"abcd efgh jkmn","vma_public_key":"ssh-rsa AAAA","vma_name":"x"}`},
		{0, `{"vma_name":"a\u001b[31m"}`},
		{0, `{}{}`},
		{0, "\xff\xfe"},
		{1, `{"enrollment_id":"0b9d3c4e-1111-4222-8333-444455556666","signature":"` + strings.Repeat("A", 86) + `=="}`},
		{1, `{"enrollment_id":"x","signature":"!!"}`},
		{2, "enrollment_id=0b9d3c4e-1111-4222-8333-444455556666&wait=0"},
		{2, "enrollment_id=%zz&wait=1e9"},
		{2, "wait=36028797018963993"},
	} {
		f.Add(s.endpoint, []byte(s.data))
	}
	srv := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, endpoint uint8, data []byte) {
		var r *http.Request
		switch endpoint % 3 {
		case 0:
			r = httptest.NewRequest("POST", api.PathEnroll, bytes.NewReader(data))
		case 1:
			r = httptest.NewRequest("POST", api.PathVerify, bytes.NewReader(data))
		default:
			u := &url.URL{Path: api.PathResult, RawQuery: string(data)}
			r = httptest.NewRequest("GET", "/", nil)
			r.URL = u
			// Never wait in a fuzz run: a long poll would only slow it.
			q := r.URL.Query()
			if q.Has("wait") {
				q.Set("wait", "0")
				r.URL.RawQuery = q.Encode()
			}
			r.Header.Set("Authorization", "Bearer vpt_fuzz")
		}
		r.Header.Set("Content-Type", "application/json")
		serve(t, srv.public, r)
	})
}

// FuzzAdminRequest feeds arbitrary bytes through the admin listener's
// handlers as the body of every admin request that has one.
func FuzzAdminRequest(f *testing.F) {
	for _, s := range []struct {
		endpoint uint8
		data     string
	}{
		{0, `{"ttl_seconds":600,"note":"rack 4"}`},
		{0, `{"ttl_seconds":-1}`},
		{0, `{"ttl_seconds":9223372036854775807}`},
		{1, `{"notes":"checked the fingerprint"}`},
		{1, ``},
		{2, `{"reason":"unknown appliance"}`},
		{3, `{"reason":"decommissioned"}`},
		{3, `{"reason":"\u202e"}`},
	} {
		f.Add(s.endpoint, []byte(s.data))
	}
	srv := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, endpoint uint8, data []byte) {
		var r *http.Request
		switch endpoint % 4 {
		case 0:
			r = httptest.NewRequest("POST", api.PathPairingCode, bytes.NewReader(data))
		case 1:
			r = httptest.NewRequest("POST", api.PathApprove+srv.id, bytes.NewReader(data))
		case 2:
			r = httptest.NewRequest("POST", api.PathReject+srv.id, bytes.NewReader(data))
		default:
			r = httptest.NewRequest("DELETE", api.PathRevoke+srv.id, bytes.NewReader(data))
		}
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+srv.token)
		serve(t, srv.admin, r)
	})
}
