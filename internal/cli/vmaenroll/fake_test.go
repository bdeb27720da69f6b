package vmaenroll

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// fakeOMA is an in-memory public listener: it checks codes and signatures
// like oma-server and lets the test decide the outcome.
type fakeOMA struct {
	mu        sync.Mutex
	codes     map[string]bool // canonical code -> unused
	enr       map[string]*fakeEnrollment
	n         int
	hostKey   string
	noLong    bool // answer wait=... with invalid_request
	failNext  int  // answer the next result calls with 503
	results   int
	changed   chan struct{}
	enrollReq []api.EnrollRequest
}

type fakeEnrollment struct {
	id, status, token, reason string
	pub                       ed25519.PublicKey
	challenge                 []byte
	name                      string
}

func newFakeOMA(t *testing.T, codes ...string) (*fakeOMA, *httptest.Server, string) {
	t.Helper()
	pub, _, _ := sshkey.Generate(nil)
	o := &fakeOMA{codes: map[string]bool{}, enr: map[string]*fakeEnrollment{}, hostKey: sshkey.AuthorizedKey(pub, "host"), changed: make(chan struct{})}
	for _, c := range codes {
		o.codes[c] = true
	}
	srv := httptest.NewTLSServer(o)
	t.Cleanup(srv.Close)
	return o, srv, client.SPKIFingerprint(srv.Certificate())
}

func (o *fakeOMA) errJSON(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}})
}

func okJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (o *fakeOMA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case api.PathEnroll:
		var in api.EnrollRequest
		json.NewDecoder(r.Body).Decode(&in)
		o.mu.Lock()
		defer o.mu.Unlock()
		o.enrollReq = append(o.enrollReq, in)
		if !o.codes[in.PairingCode] {
			o.errJSON(w, 403, "pairing_code_rejected", "pairing code rejected")
			return
		}
		o.codes[in.PairingCode] = false
		pub, _, err := sshkey.ParseAuthorizedKey(in.VMAPublicKey)
		if err != nil {
			o.errJSON(w, 400, "invalid_public_key", err.Error())
			return
		}
		o.n++
		e := &fakeEnrollment{id: fmt.Sprintf("00000000-0000-4000-8000-%012d", o.n), status: "pending_verification", pub: pub, challenge: make([]byte, 32), name: in.VMAName}
		e.challenge[0] = byte(o.n)
		o.enr[e.id] = e
		okJSON(w, 201, api.EnrollResponse{EnrollmentID: e.id, Challenge: base64.StdEncoding.EncodeToString(e.challenge), Status: e.status, ExpiresAt: time.Now().Add(10 * time.Minute)})
	case api.PathVerify:
		var in api.VerifyRequest
		json.NewDecoder(r.Body).Decode(&in)
		o.mu.Lock()
		defer o.mu.Unlock()
		e := o.enr[in.EnrollmentID]
		sig, _ := base64.StdEncoding.DecodeString(in.Signature)
		if e == nil || e.status != "pending_verification" {
			o.errJSON(w, 409, "wrong_state", "no")
			return
		}
		if !ed25519.Verify(e.pub, enroll.SignedMessage(e.id, e.challenge), sig) {
			o.errJSON(w, 400, "invalid_signature", "signature does not verify")
			return
		}
		e.status, e.token = "awaiting_approval", "poll-"+e.id
		okJSON(w, 200, api.VerifyResponse{EnrollmentID: e.id, Status: e.status, PollToken: e.token})
	case api.PathResult:
		id := r.URL.Query().Get("enrollment_id")
		wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
		o.mu.Lock()
		o.results++
		e := o.enr[id]
		if e == nil || r.Header.Get("Authorization") != "Bearer "+e.token {
			o.mu.Unlock()
			o.errJSON(w, 401, "unauthorized", "poll token missing or wrong")
			return
		}
		if o.failNext > 0 {
			o.failNext--
			o.mu.Unlock()
			o.errJSON(w, 503, "unavailable", "database unavailable")
			return
		}
		if wait > 0 && o.noLong {
			o.mu.Unlock()
			o.errJSON(w, 400, "invalid_request", "wait not supported")
			return
		}
		ch := o.changed
		status := e.status
		o.mu.Unlock()
		if wait > 0 && status == "awaiting_approval" {
			select {
			case <-ch:
			case <-time.After(wait):
			case <-r.Context().Done():
			}
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		res := api.ResultResponse{EnrollmentID: e.id, Status: e.status, VMAName: e.name, Reason: e.reason}
		if e.status == "approved" {
			res.Tunnel = &api.Tunnel{Port: 0, User: "vma_tunnel", HostKey: o.hostKey,
				LocalForwards:  []api.Forward{{Listen: "127.0.0.1:10808", Target: "127.0.0.1:10809"}},
				RemoteForwards: []api.Forward{{Listen: "127.0.0.1:9081", Target: "127.0.0.1:8081"}}}
		}
		okJSON(w, 200, res)
	default:
		o.errJSON(w, 404, "not_found", "no")
	}
}

// decide sets the status of the only (or newest) waiting enrollment.
func (o *fakeOMA) decide(status, reason string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.enr {
		if e.status == "awaiting_approval" {
			e.status, e.reason = status, reason
			close(o.changed)
			o.changed = make(chan struct{})
			return true
		}
	}
	return false
}

// decideWhenWaiting decides as soon as an enrollment awaits approval.
func (o *fakeOMA) decideWhenWaiting(t *testing.T, status, reason string) {
	go func() {
		for i := 0; i < 500; i++ {
			if o.decide(status, reason) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
}

func hostOf(url string) string { return strings.TrimPrefix(url, "https://") }
