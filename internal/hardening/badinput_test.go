package hardening_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// badCase is one hostile request and the exact answer it must get.
type badCase struct {
	name   string
	admin  bool // admin listener (else public)
	method string
	path   string // with query
	body   any
	token  string // "" none; for admin cases "" means the env's admin token unless noAuth
	noAuth bool
	header map[string]string
	status int
	code   string // "" only where net/http answers itself (no JSON body)
}

func authorizedKey(t *testing.T, k any) string {
	t.Helper()
	pk, err := ssh.NewPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// overflowingSeconds returns a whole number of seconds, far too large to
// mean anything, whose product with time.Second wraps around int64 to
// exactly secs seconds: n*1e9 ≡ secs*1e9 (mod 2^64), that is
// n*1953125 ≡ secs*1953125 (mod 2^55), as 1e9 = 2^9 * 1953125.
func overflowingSeconds(secs int64) string {
	m := new(big.Int).Lsh(big.NewInt(1), 55)
	inv := new(big.Int).ModInverse(big.NewInt(1953125), m)
	n := new(big.Int).Mul(big.NewInt(secs*1953125), inv)
	n.Mod(n, m)
	n.Add(n, m) // surely not secs itself
	return n.String()
}

// TestBadInput sends every kind of hostile request to both listeners of a
// running server and asserts the exact status and error code of each, and
// that none of them changed anything in the database but audit rows.
func TestBadInput(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		e := startEnv(t, envOpts{driver: driver})

		// The state the hostile requests run against: one enrollment
		// awaiting approval, one approved, one still to be verified, and an
		// unused pairing code.
		pendV := newVMAKey(t, "vma-pending")
		pend := e.enrollVerified(t, pendV)
		pendSig := base64.StdEncoding.EncodeToString(enroll.SignChallenge(pendV.priv, pend.id, pend.challenge))
		apprV := newVMAKey(t, "vma-approved")
		appr := e.enrollVerified(t, apprV)
		if r := e.adminDo("POST", api.PathApprove+appr.id, nil); r.status != 200 {
			t.Fatalf("approve: %s", r)
		}
		unverV := newVMAKey(t, "vma-unverified")
		_, unver := e.enroll(unverV, e.mustCode(t), nil)
		if unver == nil {
			t.Fatal("enroll of the unverified VMA failed")
		}
		code := e.mustCode(t)
		other := newVMAKey(t, "vma-other")

		good := api.EnrollRequest{PairingCode: code, VMAPublicKey: other.pub, VMAName: "vma-new", VMAVersion: "1.0"}
		with := func(f func(*api.EnrollRequest)) string {
			r := good
			f(&r)
			return mustJSON(r)
		}
		goodJSON := mustJSON(good)

		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		// x/crypto/ssh no longer encodes DSA keys: build the ssh-dss blob.
		dsaBlob := ssh.Marshal(struct {
			Name       string
			P, Q, G, Y *big.Int
		}{"ssh-dss", big.NewInt(23), big.NewInt(11), big.NewInt(4), big.NewInt(8)})
		dsaLine := "ssh-dss " + base64.StdEncoding.EncodeToString(dsaBlob)
		rsaLine := authorizedKey(t, &rsaKey.PublicKey)
		edLine := strings.Fields(other.pub)
		truncated := edLine[0] + " " + edLine[1][:len(edLine[1])/2]
		sig := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
		verifyBody := func(id, s string) string { return mustJSON(api.VerifyRequest{EnrollmentID: id, Signature: s}) }
		otherSig := sig(enroll.SignChallenge(other.priv, unver.id, unver.challenge))
		wrongMsgSig := sig(enroll.SignChallenge(unverV.priv, pend.id, unver.challenge))
		unknownID := "0b9d3c4e-1111-4222-8333-444455556666"
		res := func(q string) string { return api.PathResult + "?" + q }
		esc := "\x1b[31mred\x1b[0m"
		sqlInj := "x'; DROP TABLE vma_enrollments; --"

		cases := []badCase{
			// --- enroll: malformed and truncated JSON, wrong types, unknown fields
			{name: "enroll malformed json", method: "POST", path: api.PathEnroll, body: `{"pairing_code":`, status: 400, code: "invalid_request"},
			{name: "enroll truncated json", method: "POST", path: api.PathEnroll, body: goodJSON[:len(goodJSON)/2], status: 400, code: "invalid_request"},
			{name: "enroll not json", method: "POST", path: api.PathEnroll, body: "hello", status: 400, code: "invalid_request"},
			{name: "enroll json array", method: "POST", path: api.PathEnroll, body: "[]", status: 400, code: "invalid_request"},
			{name: "enroll json string", method: "POST", path: api.PathEnroll, body: `"x"`, status: 400, code: "invalid_request"},
			{name: "enroll json null", method: "POST", path: api.PathEnroll, body: `null`, status: 400, code: "invalid_request"},
			{name: "enroll two objects", method: "POST", path: api.PathEnroll, body: goodJSON + goodJSON, status: 400, code: "invalid_request"},
			{name: "enroll trailing garbage", method: "POST", path: api.PathEnroll, body: goodJSON + " x", status: 400, code: "invalid_request"},
			{name: "enroll code is a number", method: "POST", path: api.PathEnroll, body: `{"pairing_code":123456789012,"vma_public_key":"","vma_name":"a"}`, status: 400, code: "invalid_request"},
			{name: "enroll name is an object", method: "POST", path: api.PathEnroll, body: `{"vma_name":{"a":1}}`, status: 400, code: "invalid_request"},
			{name: "enroll key is an array", method: "POST", path: api.PathEnroll, body: `{"vma_public_key":["ssh-ed25519"]}`, status: 400, code: "invalid_request"},
			{name: "enroll version is a bool", method: "POST", path: api.PathEnroll, body: `{"vma_version":true}`, status: 400, code: "invalid_request"},
			{name: "enroll unknown field", method: "POST", path: api.PathEnroll, body: strings.TrimSuffix(goodJSON, "}") + `,"extra":1}`, status: 400, code: "invalid_request"},
			{name: "enroll smuggled status", method: "POST", path: api.PathEnroll, body: strings.TrimSuffix(goodJSON, "}") + `,"status":"approved"}`, status: 400, code: "invalid_request"},
			{name: "enroll smuggled approved_by", method: "POST", path: api.PathEnroll, body: strings.TrimSuffix(goodJSON, "}") + `,"approved_by":"admin"}`, status: 400, code: "invalid_request"},
			{name: "enroll field name in upper case", method: "POST", path: api.PathEnroll, body: strings.Replace(goodJSON, `"vma_name"`, `"VMA_NAME"`, 1), status: 400, code: "invalid_request"},
			{name: "enroll field repeated", method: "POST", path: api.PathEnroll, body: strings.TrimSuffix(goodJSON, "}") + `,"vma_name":"vma-other"}`, status: 400, code: "invalid_request"},
			{name: "enroll field repeated in another case", method: "POST", path: api.PathEnroll, body: strings.TrimSuffix(goodJSON, "}") + `,"Vma_Name":"vma-other"}`, status: 400, code: "invalid_request"},
			{name: "enroll smuggled fingerprint", method: "POST", path: api.PathEnroll, body: strings.TrimSuffix(goodJSON, "}") + `,"vma_fingerprint":"SHA256:x"}`, status: 400, code: "invalid_request"},
			// --- empty and oversized
			{name: "enroll empty body", method: "POST", path: api.PathEnroll, body: "", status: 400, code: "invalid_request"},
			{name: "enroll whitespace body", method: "POST", path: api.PathEnroll, body: " \n\t ", status: 400, code: "invalid_request"},
			{name: "enroll body over 64 KiB", method: "POST", path: api.PathEnroll, body: `{"vma_name":"` + strings.Repeat("a", 70000) + `"}`, status: 413, code: "body_too_large"},
			{name: "enroll 1 MiB body", method: "POST", path: api.PathEnroll, body: strings.Repeat(" ", 1<<20), status: 413, code: "body_too_large"},
			{name: "enroll 60 KB name", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAName = strings.Repeat("a", 60000) }), status: 400, code: "invalid_request"},
			{name: "enroll 65 char name", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAName = strings.Repeat("a", 65) }), status: 400, code: "invalid_request"},
			{name: "enroll 10 KB code", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.PairingCode = strings.Repeat("A", 10000) }), status: 403, code: "pairing_code_rejected"},
			{name: "enroll 5 KB key", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAPublicKey = "ssh-ed25519 " + strings.Repeat("A", 5000) }), status: 400, code: "invalid_public_key"},
			{name: "enroll 1 KB version", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAVersion = strings.Repeat("1", 1000) }), status: 400, code: "invalid_request"},
			// --- non-UTF-8, NUL, newlines, escapes
			{name: "enroll non-UTF-8 body", method: "POST", path: api.PathEnroll, body: []byte(strings.Replace(goodJSON, "vma-new", "vma-\xff\xfe", 1)), status: 400, code: "invalid_request"},
			{name: "enroll lone surrogate escape", method: "POST", path: api.PathEnroll, body: strings.Replace(goodJSON, "vma-new", `vma-\udc00`, 1), status: 400, code: "invalid_request"},
			{name: "enroll raw NUL in string", method: "POST", path: api.PathEnroll, body: []byte(strings.Replace(goodJSON, "vma-new", "vma-\x00", 1)), status: 400, code: "invalid_request"},
			{name: "enroll NUL outside strings", method: "POST", path: api.PathEnroll, body: []byte("\x00" + goodJSON), status: 400, code: "invalid_request"},
			{name: "enroll escaped NUL in name", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAName = "vma\x00new" }), status: 400, code: "invalid_request"},
			{name: "enroll newline in name", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAName = "vma\nnew" }), status: 400, code: "invalid_request"},
			{name: "enroll CR in name", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAName = "vma\rnew" }), status: 400, code: "invalid_request"},
			{name: "enroll ANSI escape in name", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAName = "vma" + esc }), status: 400, code: "invalid_request"},
			{name: "enroll OSC title in name", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAName = "a\x1b]0;pwned\x07" }), status: 400, code: "invalid_request"},
			{name: "enroll bidi override in name", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAName = "vma\u202egnp" }), status: 400, code: "invalid_request"},
			{name: "enroll C1 CSI in name", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAName = "vma\u009b31m" }), status: 400, code: "invalid_request"},
			{name: "enroll ANSI escape in version", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAVersion = "1.0" + esc }), status: 400, code: "invalid_request"},
			{name: "enroll newline in version", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAVersion = "1.0\nFAKE LOG LINE" }), status: 400, code: "invalid_request"},
			// --- SQL injection
			{name: "enroll SQL injection in name", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAName = sqlInj }), status: 400, code: "invalid_request"},
			{name: "enroll SQL injection in version", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAVersion = "1' OR '1'='1" }), status: 400, code: "invalid_request"},
			{name: "enroll SQL injection in code", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.PairingCode = "' OR '1'='1" }), status: 403, code: "pairing_code_rejected"},
			{name: "enroll SQL injection in key", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAPublicKey = "ssh-ed25519 ' OR 1=1 --" }), status: 400, code: "invalid_public_key"},
			// --- keys
			{name: "enroll RSA key", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAPublicKey = rsaLine }), status: 400, code: "invalid_public_key"},
			{name: "enroll ECDSA key", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAPublicKey = authorizedKey(t, &ecKey.PublicKey) }), status: 400, code: "invalid_public_key"},
			{name: "enroll DSA key", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAPublicKey = dsaLine }), status: 400, code: "invalid_public_key"},
			{name: "enroll RSA blob labelled ed25519", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAPublicKey = "ssh-ed25519 " + strings.Fields(rsaLine)[1] }), status: 400, code: "invalid_public_key"},
			{name: "enroll garbage key", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAPublicKey = "hello world" }), status: 400, code: "invalid_public_key"},
			{name: "enroll empty key", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAPublicKey = "" }), status: 400, code: "invalid_public_key"},
			{name: "enroll truncated ed25519 key", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAPublicKey = truncated }), status: 400, code: "invalid_public_key"},
			{name: "enroll key with options", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAPublicKey = `command="/bin/sh" ` + other.pub }), status: 400, code: "invalid_public_key"},
			{name: "enroll two keys", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.VMAPublicKey = other.pub + "\n" + pendV.pub }), status: 400, code: "invalid_public_key"},
			// --- codes, content type, methods
			{name: "enroll wrong code", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.PairingCode = "AAAA-BBBB-CCCC" }), status: 403, code: "pairing_code_rejected"},
			{name: "enroll all-zero code", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.PairingCode = "0000-0000-0000" }), status: 403, code: "pairing_code_rejected"},
			{name: "enroll code with U", method: "POST", path: api.PathEnroll, body: with(func(r *api.EnrollRequest) { r.PairingCode = "UUUU-UUUU-UUUU" }), status: 403, code: "pairing_code_rejected"},
			{name: "enroll text/plain", method: "POST", path: api.PathEnroll, body: goodJSON, header: map[string]string{"Content-Type": "text/plain"}, status: 400, code: "invalid_request"},
			{name: "enroll form encoded", method: "POST", path: api.PathEnroll, body: "pairing_code=" + code, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, status: 400, code: "invalid_request"},
			{name: "enroll GET", method: "GET", path: api.PathEnroll, status: 405, code: "method_not_allowed"},
			{name: "enroll PUT", method: "PUT", path: api.PathEnroll, body: goodJSON, status: 405, code: "method_not_allowed"},
			{name: "enroll DELETE", method: "DELETE", path: api.PathEnroll, status: 405, code: "method_not_allowed"},
			{name: "enroll TRACE", method: "TRACE", path: api.PathEnroll, status: 405, code: "method_not_allowed"},

			// --- verify
			{name: "verify before enroll (unknown id)", method: "POST", path: api.PathVerify, body: verifyBody(unknownID, sig(make([]byte, 64))), status: 404, code: "not_found"},
			{name: "verify malformed id", method: "POST", path: api.PathVerify, body: verifyBody("not-an-id", sig(make([]byte, 64))), status: 400, code: "invalid_request"},
			{name: "verify SQL injection id", method: "POST", path: api.PathVerify, body: verifyBody(unver.id+"' OR '1'='1", sig(make([]byte, 64))), status: 400, code: "invalid_request"},
			{name: "verify missing signature", method: "POST", path: api.PathVerify, body: verifyBody(unver.id, ""), status: 400, code: "invalid_request"},
			{name: "verify non-base64 signature", method: "POST", path: api.PathVerify, body: verifyBody(unver.id, "!!!!"), status: 400, code: "invalid_signature"},
			{name: "verify base64url signature", method: "POST", path: api.PathVerify, body: verifyBody(unver.id, strings.Repeat("-_", 43)), status: 400, code: "invalid_signature"},
			{name: "verify 63-byte signature", method: "POST", path: api.PathVerify, body: verifyBody(unver.id, sig(make([]byte, 63))), status: 400, code: "invalid_signature"},
			{name: "verify 65-byte signature", method: "POST", path: api.PathVerify, body: verifyBody(unver.id, sig(make([]byte, 65))), status: 400, code: "invalid_signature"},
			{name: "verify 1 MB-ish signature", method: "POST", path: api.PathVerify, body: verifyBody(unver.id, sig(make([]byte, 40000))), status: 400, code: "invalid_signature"},
			{name: "verify zero signature", method: "POST", path: api.PathVerify, body: verifyBody(unver.id, sig(make([]byte, 64))), status: 400, code: "invalid_signature"},
			{name: "verify signature by another key", method: "POST", path: api.PathVerify, body: verifyBody(unver.id, otherSig), status: 400, code: "invalid_signature"},
			{name: "verify signature over another message", method: "POST", path: api.PathVerify, body: verifyBody(unver.id, wrongMsgSig), status: 400, code: "invalid_signature"},
			{name: "verify replayed", method: "POST", path: api.PathVerify, body: verifyBody(pend.id, pendSig), status: 409, code: "wrong_state"},
			{name: "verify approved", method: "POST", path: api.PathVerify, body: verifyBody(appr.id, pendSig), status: 409, code: "wrong_state"},
			{name: "verify unknown field", method: "POST", path: api.PathVerify, body: `{"enrollment_id":"` + unver.id + `","signature":"` + otherSig + `","poll_token":"x"}`, status: 400, code: "invalid_request"},
			{name: "verify repeated signature", method: "POST", path: api.PathVerify, body: `{"enrollment_id":"` + unver.id + `","signature":"` + otherSig + `","signature":"` + otherSig + `"}`, status: 400, code: "invalid_request"},
			{name: "verify GET", method: "GET", path: api.PathVerify, status: 405, code: "method_not_allowed"},

			// --- result
			{name: "result without id", method: "GET", path: api.PathResult, token: pend.pollToken, status: 400, code: "invalid_request"},
			{name: "result malformed id", method: "GET", path: res("enrollment_id=../../etc/passwd"), token: pend.pollToken, status: 400, code: "invalid_request"},
			{name: "result SQL injection id", method: "GET", path: res("enrollment_id=" + url.QueryEscape(pend.id+"' OR '1'='1")), token: pend.pollToken, status: 400, code: "invalid_request"},
			{name: "result unknown id", method: "GET", path: res("enrollment_id=" + unknownID), token: pend.pollToken, status: 404, code: "not_found"},
			{name: "result missing poll token", method: "GET", path: res("enrollment_id=" + pend.id), status: 401, code: "unauthorized"},
			{name: "result wrong poll token", method: "GET", path: res("enrollment_id=" + pend.id), token: "vpt_wrong", status: 401, code: "unauthorized"},
			{name: "result another enrollment's token", method: "GET", path: res("enrollment_id=" + appr.id), token: pend.pollToken, status: 401, code: "unauthorized"},
			{name: "result admin token as poll token", method: "GET", path: res("enrollment_id=" + pend.id), token: e.token, status: 401, code: "unauthorized"},
			{name: "result unverified (no token exists)", method: "GET", path: res("enrollment_id=" + unver.id), token: "vpt_x", status: 401, code: "unauthorized"},
			{name: "result basic auth", method: "GET", path: res("enrollment_id=" + pend.id), header: map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("a:"+pend.pollToken))}, status: 401, code: "unauthorized"},
			{name: "result wait not a duration", method: "GET", path: res("enrollment_id=" + pend.id + "&wait=abc"), token: pend.pollToken, status: 400, code: "invalid_request"},
			{name: "result wait negative", method: "GET", path: res("enrollment_id=" + pend.id + "&wait=-1s"), token: pend.pollToken, status: 400, code: "invalid_request"},
			{name: "result wait 61s", method: "GET", path: res("enrollment_id=" + pend.id + "&wait=61s"), token: pend.pollToken, status: 400, code: "invalid_request"},
			{name: "result wait 5h", method: "GET", path: res("enrollment_id=" + pend.id + "&wait=5h"), token: pend.pollToken, status: 400, code: "invalid_request"},
			{name: "result wait exponent", method: "GET", path: res("enrollment_id=" + pend.id + "&wait=1e3"), token: pend.pollToken, status: 400, code: "invalid_request"},
			{name: "result wait huge integer", method: "GET", path: res("enrollment_id=" + pend.id + "&wait=99999999999999999999999"), token: pend.pollToken, status: 400, code: "invalid_request"},
			{name: "result wait overflowing to 25s", method: "GET", path: res("enrollment_id=" + pend.id + "&wait=" + overflowingSeconds(25)), token: pend.pollToken, status: 400, code: "invalid_request"},
			{name: "result POST", method: "POST", path: res("enrollment_id=" + pend.id), token: pend.pollToken, status: 405, code: "method_not_allowed"},
			{name: "result 10 KB id", method: "GET", path: res("enrollment_id=" + strings.Repeat("a", 10000)), token: pend.pollToken, status: 400, code: "invalid_request"},
			// net/http itself refuses a request line over MaxHeaderBytes (16 KiB), in plain text.
			{name: "result 64 KB query string", method: "GET", path: res("enrollment_id=" + pend.id + "&x=" + strings.Repeat("a", 64000)), token: pend.pollToken, status: 431},

			// --- routing on the public listener
			{name: "public admin path", method: "GET", path: api.PathPending, status: 404, code: "not_found"},
			{name: "public admin approve", method: "POST", path: api.PathApprove + pend.id, status: 404, code: "not_found"},
			{name: "public metrics", method: "GET", path: api.PathMetrics, status: 404, code: "not_found"},
			{name: "public path traversal", method: "GET", path: "/api/v1/vma/enroll/../../admin/vma/pending", status: 404, code: "not_found"},
			{name: "public encoded traversal", method: "GET", path: "/%2e%2e/api/v1/admin/vma/pending", status: 404, code: "not_found"},
			{name: "public double slash", method: "POST", path: "/" + api.PathEnroll, body: goodJSON, status: 404, code: "not_found"},
			{name: "public trailing slash", method: "POST", path: api.PathEnroll + "/", body: goodJSON, status: 404, code: "not_found"},
			{name: "public encoded NUL", method: "POST", path: api.PathEnroll + "%00", body: goodJSON, status: 404, code: "not_found"},
			{name: "public dot segment", method: "POST", path: "/api/v1/vma/./enroll", body: goodJSON, status: 404, code: "not_found"},

			// --- admin listener: authentication
			{name: "admin no token", admin: true, noAuth: true, method: "GET", path: api.PathPending, status: 401, code: "unauthorized"},
			{name: "admin wrong token", admin: true, method: "GET", path: api.PathPending, token: "oma_wrong", status: 401, code: "unauthorized"},
			{name: "admin poll token", admin: true, method: "GET", path: api.PathPending, token: pend.pollToken, status: 401, code: "unauthorized"},
			{name: "admin token in query", admin: true, noAuth: true, method: "GET", path: api.PathPending + "?token=" + url.QueryEscape(e.token), status: 401, code: "unauthorized"},
			{name: "admin approve without token", admin: true, noAuth: true, method: "POST", path: api.PathApprove + pend.id, status: 401, code: "unauthorized"},
			{name: "admin pairing code without token", admin: true, noAuth: true, method: "POST", path: api.PathPairingCode, status: 401, code: "unauthorized"},
			// --- admin: ids
			{name: "approve unknown id", admin: true, method: "POST", path: api.PathApprove + unknownID, status: 404, code: "not_found"},
			{name: "approve malformed id", admin: true, method: "POST", path: api.PathApprove + "not-an-id", status: 400, code: "invalid_request"},
			{name: "approve SQL injection id", admin: true, method: "POST", path: api.PathApprove + url.PathEscape("' OR '1'='1"), status: 400, code: "invalid_request"},
			{name: "approve upper-case unknown id", admin: true, method: "POST", path: api.PathApprove + strings.ToUpper(unknownID), status: 404, code: "not_found"},
			{name: "approve path traversal", admin: true, method: "POST", path: api.PathApprove + "../reject/" + pend.id, status: 404, code: "not_found"},
			{name: "approve encoded slash", admin: true, method: "POST", path: api.PathApprove + url.PathEscape("../"+pend.id), status: 400, code: "invalid_request"},
			{name: "approve no id", admin: true, method: "POST", path: api.PathApprove, status: 404, code: "not_found"},
			{name: "reject unknown id", admin: true, method: "POST", path: api.PathReject + unknownID, status: 404, code: "not_found"},
			{name: "revoke malformed id", admin: true, method: "DELETE", path: api.PathRevoke + "12345678", status: 400, code: "invalid_request"},
			// --- admin: wrong state
			{name: "approve approved", admin: true, method: "POST", path: api.PathApprove + appr.id, status: 409, code: "wrong_state"},
			{name: "approve unverified", admin: true, method: "POST", path: api.PathApprove + unver.id, status: 409, code: "wrong_state"},
			{name: "reject approved", admin: true, method: "POST", path: api.PathReject + appr.id, status: 409, code: "wrong_state"},
			{name: "revoke pending", admin: true, method: "DELETE", path: api.PathRevoke + pend.id, status: 409, code: "wrong_state"},
			// --- admin: bodies
			{name: "approve unknown field", admin: true, method: "POST", path: api.PathApprove + pend.id, body: `{"notes":"ok","approved_by":"someone-else"}`, status: 400, code: "invalid_request"},
			{name: "approve notes with ANSI escape", admin: true, method: "POST", path: api.PathApprove + pend.id, body: api.ApproveRequest{Notes: "ok" + esc}, status: 400, code: "invalid_request"},
			{name: "approve notes wrong type", admin: true, method: "POST", path: api.PathApprove + pend.id, body: `{"notes":42}`, status: 400, code: "invalid_request"},
			{name: "approve body over 64 KiB", admin: true, method: "POST", path: api.PathApprove + pend.id, body: `{"notes":"` + strings.Repeat("n", 70000) + `"}`, status: 413, code: "body_too_large"},
			{name: "approve notes too long", admin: true, method: "POST", path: api.PathApprove + pend.id, body: api.ApproveRequest{Notes: strings.Repeat("n", 2000)}, status: 400, code: "invalid_request"},
			{name: "reject reason with newline", admin: true, method: "POST", path: api.PathReject + pend.id, body: api.ReasonRequest{Reason: "a\nb"}, status: 400, code: "invalid_request"},
			{name: "reject reason non-UTF-8", admin: true, method: "POST", path: api.PathReject + pend.id, body: []byte("{\"reason\":\"\xff\"}"), status: 400, code: "invalid_request"},
			{name: "reject malformed json", admin: true, method: "POST", path: api.PathReject + pend.id, body: `{"reason":`, status: 400, code: "invalid_request"},
			{name: "revoke malformed json", admin: true, method: "DELETE", path: api.PathRevoke + appr.id, body: `{`, status: 400, code: "invalid_request"},
			{name: "revoke reason with bidi override", admin: true, method: "DELETE", path: api.PathRevoke + appr.id, body: api.ReasonRequest{Reason: "x\u202ey"}, status: 400, code: "invalid_request"},
			// --- fleets (docs/fleet.md)
			{name: "pairing code uses negative", admin: true, method: "POST", path: api.PathPairingCode, body: `{"uses":-1}`, status: 400, code: "invalid_request"},
			{name: "pairing code uses over the ceiling", admin: true, method: "POST", path: api.PathPairingCode, body: `{"uses":1001}`, status: 400, code: "invalid_request"},
			{name: "pairing code uses huge", admin: true, method: "POST", path: api.PathPairingCode, body: `{"uses":9223372036854775807}`, status: 400, code: "invalid_request"},
			{name: "pairing code label key with space", admin: true, method: "POST", path: api.PathPairingCode, body: `{"labels":{"bad key":"x"}}`, status: 400, code: "invalid_request"},
			{name: "pairing code label value with ANSI escape", admin: true, method: "POST", path: api.PathPairingCode, body: api.PairingCodeRequest{Labels: map[string]string{"site": "fra" + esc}}, status: 400, code: "invalid_request"},
			{name: "pairing code label value too long", admin: true, method: "POST", path: api.PathPairingCode, body: api.PairingCodeRequest{Labels: map[string]string{"site": strings.Repeat("a", 64)}}, status: 400, code: "invalid_request"},
			{name: "pairing code from without auto_approve", admin: true, method: "POST", path: api.PathPairingCode, body: `{"from_cidr":"10.0.0.0/8"}`, status: 400, code: "invalid_request"},
			{name: "pairing code from not a CIDR", admin: true, method: "POST", path: api.PathPairingCode, body: `{"auto_approve":true,"from_cidr":"10.0.0.0/33"}`, status: 400, code: "invalid_request"},
			{name: "pairing code revoke bad id", admin: true, method: "POST", path: api.PathPairingCodeRevoke + "nope", status: 400, code: "invalid_request"},
			{name: "pairing code revoke unknown id", admin: true, method: "POST", path: api.PathPairingCodeRevoke + "00000000-0000-4000-8000-000000000000", status: 404, code: "not_found"},
			{name: "bulk unknown action", admin: true, method: "POST", path: api.PathBulk + "delete", body: `{"ids":["x"]}`, status: 404, code: "not_found"},
			{name: "bulk no ids", admin: true, method: "POST", path: api.PathBulk + "approve", body: `{"ids":[]}`, status: 400, code: "invalid_request"},
			{name: "bulk no body", admin: true, method: "POST", path: api.PathBulk + "approve", status: 400, code: "invalid_request"},
			{name: "bulk ids wrong type", admin: true, method: "POST", path: api.PathBulk + "approve", body: `{"ids":"x"}`, status: 400, code: "invalid_request"},
			{name: "pending malformed selector", admin: true, method: "GET", path: api.PathPending + "?selector=site+in+(fra", status: 400, code: "invalid_request"},
			{name: "enrollments selector with ANSI escape", admin: true, method: "GET", path: api.PathEnrollments + "?selector=site%3D%1b%5b31m", status: 400, code: "invalid_request"},
			{name: "active selector too long", admin: true, method: "GET", path: api.PathActive + "?selector=" + strings.Repeat("a", 2000), status: 400, code: "invalid_request"},
			{name: "pairing codes all not a bool", admin: true, method: "GET", path: api.PathPairingCodes + "?all=maybe", status: 400, code: "invalid_request"},
			{name: "enroll vma label bad", method: "POST", path: api.PathEnroll, body: `{"pairing_code":"AAAA-AAAA-AAAA","vma_public_key":"x","vma_name":"a","vma_version":"1","vma_labels":{"k":"v v"}}`, status: 400, code: "invalid_request"},
			{name: "pairing code negative ttl", admin: true, method: "POST", path: api.PathPairingCode, body: `{"ttl_seconds":-5}`, status: 400, code: "invalid_request"},
			{name: "pairing code ttl over 24h", admin: true, method: "POST", path: api.PathPairingCode, body: `{"ttl_seconds":90000}`, status: 400, code: "invalid_request"},
			{name: "pairing code ttl under 1m", admin: true, method: "POST", path: api.PathPairingCode, body: `{"ttl_seconds":5}`, status: 400, code: "invalid_request"},
			{name: "pairing code ttl max int64", admin: true, method: "POST", path: api.PathPairingCode, body: `{"ttl_seconds":9223372036854775807}`, status: 400, code: "invalid_request"},
			{name: "pairing code ttl overflowing to 10m", admin: true, method: "POST", path: api.PathPairingCode, body: `{"ttl_seconds":` + overflowingSeconds(600) + `}`, status: 400, code: "invalid_request"},
			{name: "pairing code ttl is a string", admin: true, method: "POST", path: api.PathPairingCode, body: `{"ttl_seconds":"600"}`, status: 400, code: "invalid_request"},
			{name: "pairing code ttl is a float", admin: true, method: "POST", path: api.PathPairingCode, body: `{"ttl_seconds":600.5}`, status: 400, code: "invalid_request"},
			{name: "pairing code note with escape", admin: true, method: "POST", path: api.PathPairingCode, body: api.PairingCodeRequest{Note: "n" + esc}, status: 400, code: "invalid_request"},
			{name: "pairing code field in another case", admin: true, method: "POST", path: api.PathPairingCode, body: `{"TTL_Seconds":600}`, status: 400, code: "invalid_request"},
			{name: "pairing code unknown field", admin: true, method: "POST", path: api.PathPairingCode, body: `{"generated_by":"root"}`, status: 400, code: "invalid_request"},
			// --- admin: methods and queries
			{name: "approve GET", admin: true, method: "GET", path: api.PathApprove + pend.id, status: 405, code: "method_not_allowed"},
			{name: "pending PUT", admin: true, method: "PUT", path: api.PathPending, status: 405, code: "method_not_allowed"},
			{name: "pairing code GET", admin: true, method: "GET", path: api.PathPairingCode, status: 405, code: "method_not_allowed"},
			{name: "audit bad event_type", admin: true, method: "GET", path: api.PathAudit + "?event_type=" + url.QueryEscape("x' OR 1=1"), status: 400, code: "invalid_request"},
			{name: "audit bad since", admin: true, method: "GET", path: api.PathAudit + "?since=yesterday", status: 400, code: "invalid_request"},
			{name: "audit limit 0", admin: true, method: "GET", path: api.PathAudit + "?limit=0", status: 400, code: "invalid_request"},
			{name: "audit limit huge", admin: true, method: "GET", path: api.PathAudit + "?limit=99999999999999999999", status: 400, code: "invalid_request"},
			{name: "audit negative cursor", admin: true, method: "GET", path: api.PathAudit + "?cursor=-1", status: 400, code: "invalid_request"},
			{name: "audit bad order", admin: true, method: "GET", path: api.PathAudit + "?order=" + url.QueryEscape("id; DROP TABLE x"), status: 400, code: "invalid_request"},
			{name: "audit SQL injection enrollment", admin: true, method: "GET", path: api.PathAudit + "?enrollment_id=" + url.QueryEscape("' OR 1=1 --"), status: 400, code: "invalid_request"},
			{name: "enrollments LIKE injection", admin: true, method: "GET", path: api.PathEnrollments + "?id_prefix=" + url.QueryEscape("%' OR '1'='1"), status: 400, code: "invalid_request"},
			{name: "enrollments bogus status", admin: true, method: "GET", path: api.PathEnrollments + "?status=" + url.QueryEscape("approved' OR '1'='1"), status: 400, code: "invalid_request"},
			{name: "admin path traversal", admin: true, method: "GET", path: "/api/v1/admin/vma/pending/../active", status: 404, code: "not_found"},
			{name: "admin unknown path", admin: true, method: "GET", path: "/api/v1/admin/vma/secrets", status: 404, code: "not_found"},
			{name: "admin 64 KB query string", admin: true, method: "GET", path: api.PathAudit + "?vma_name=" + strings.Repeat("a", 64000), status: 431},
		}
		if len(cases) < 60 {
			t.Fatalf("only %d cases", len(cases))
		}

		before := dumpDB(t, e.raw, driver)
		auditBefore := len(e.auditEvents(t, ""))
		for _, c := range cases {
			base, tok := e.public, c.token
			if c.admin {
				base = e.admin
				if tok == "" && !c.noAuth {
					tok = e.token
				}
			}
			r := e.send(req{method: c.method, url: base + c.path, body: c.body, token: tok, header: c.header})
			if r.err != nil {
				t.Errorf("%s: %v", c.name, r.err)
				continue
			}
			if r.status != c.status || r.code() != c.code {
				t.Errorf("%s: got %d %q, want %d %q\n  body: %.300s", c.name, r.status, r.code(), c.status, c.code, r.body)
			}
			if c.code != "" {
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("%s: Content-Type %q, want application/json", c.name, ct)
				}
				var eb api.ErrorBody
				if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error.Message == "" {
					t.Errorf("%s: error body %q is not the JSON envelope with a message", c.name, r.body)
				}
				if strings.ContainsAny(eb.Error.Message, "\x1b\x00\n\r\u009b\u202e") {
					t.Errorf("%s: error message echoes control characters: %q", c.name, eb.Error.Message)
				}
			}
			if d := diffDump(before, dumpDB(t, e.raw, driver)); d != "" {
				t.Fatalf("%s changed the database:\n%s", c.name, d)
			}
		}
		// Audit rows are the only change: the refused codes and signatures.
		evs := e.auditEvents(t, "")
		var failed []string
		for _, ev := range evs[auditBefore:] {
			if ev.EventType != "enrollment_failed" {
				t.Errorf("bad input wrote a %s audit event: %+v", ev.EventType, ev)
			}
			failed = append(failed, fmt.Sprint(ev.EventDetails["reason"]))
		}
		if want := "pairing_code_unknown,pairing_code_unknown,invalid_signature,invalid_signature,invalid_signature"; strings.Join(failed, ",") != want {
			t.Errorf("audit of the bad input: %v, want %s", failed, want)
		}
		e.chainOK(t)
		t.Logf("%d hostile requests, %d audit rows, database otherwise unchanged", len(cases), len(evs)-auditBefore)

		// Nothing was consumed or spoiled: the code still works once, the
		// unverified enrollment still verifies with its key, the pending one
		// still approves.
		if r, en := e.enroll(other, code, nil); en == nil {
			t.Fatalf("the good enroll after the bad input: %s", r)
		}
		if r := e.verify(unverV, unver); r.status != 200 {
			t.Fatalf("the good verify after the bad input: %s", r)
		}
		if r := e.adminDo("POST", api.PathApprove+pend.id, nil); r.status != 200 {
			t.Fatalf("the good approval after the bad input: %s", r)
		}
	})
}
