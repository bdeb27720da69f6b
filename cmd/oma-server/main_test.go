package main_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// binDir holds oma-server, built once for all tests.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testbin.Main(m, &binDir, "oma-server"))
}

func binary() string { return filepath.Join(binDir, "oma-server") }

// start runs the binary on dataDir, on the ports of the previous run when
// prev is not nil (a restart), with JSON logs.
func start(t *testing.T, dataDir string, prev *testbin.Server) *testbin.Server {
	t.Helper()
	o := testbin.ServerOptions{Binary: binary(), DataDir: dataDir, LogFormat: "json"}
	if prev == nil {
		return testbin.StartServer(t, o)
	}
	prev.Restart()
	return prev
}

// stop ends p with SIGTERM and fails unless it exited cleanly.
func stop(t *testing.T, p *testbin.Server) {
	t.Helper()
	if err := p.Stop(); err != nil {
		t.Fatalf("%v; log:\n%s", err, p.Log)
	}
}

func call(t *testing.T, c *http.Client, method, url, token string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
	return res.StatusCode
}

// TestServeBinaryEnrollsAndSurvivesRestart drives a whole enrollment over
// real TLS with fingerprint pinning against the built binary, restarts it,
// and checks that the certificate, the admin token and the data survived.
func TestServeBinaryEnrollsAndSurvivesRestart(t *testing.T) {
	dataDir := t.TempDir()
	p := start(t, dataDir, nil)
	admin, public := p.Admin, p.Public

	tokBytes, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dataDir, "admin.token")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode %v, want 0600", fi.Mode().Perm())
	}
	token := strings.TrimSpace(string(tokBytes))
	if strings.Contains(p.Log.String(), token) {
		t.Fatal("the admin token appears in the log")
	}
	plain := &http.Client{Timeout: 30 * time.Second}
	var pc api.PairingCodeResponse
	if st := call(t, plain, "POST", "http://"+admin+api.PathPairingCode, token, api.PairingCodeRequest{}, &pc); st != 201 {
		t.Fatalf("pairing code: %d", st)
	}
	if !strings.HasPrefix(pc.JoinCommand, "vma-enroll --oma 127.0.0.1:") {
		t.Fatalf("join command %q", pc.JoinCommand)
	}

	// A client pinned to another fingerprint cannot even connect.
	wrong := testbin.PinnedClient("sha256:"+strings.Repeat("0", 64), 0)
	if _, err := wrong.Get("https://" + public + "/health"); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("wrongly pinned client: %v", err)
	}

	c := testbin.PinnedClient(pc.OMAFingerprint, 0)
	pub, priv, _ := sshkey.Generate(nil)
	var er api.EnrollResponse
	if st := call(t, c, "POST", "https://"+public+api.PathEnroll, "", api.EnrollRequest{
		PairingCode: strings.ToLower(strings.ReplaceAll(pc.PairingCode, "-", "")), VMAPublicKey: sshkey.AuthorizedKey(pub, "vma"), VMAName: "restart-vma", VMAVersion: "2.0.1",
	}, &er); st != 201 {
		t.Fatalf("enroll: %d", st)
	}
	ch, _ := base64.StdEncoding.DecodeString(er.Challenge)
	var vr api.VerifyResponse
	if st := call(t, c, "POST", "https://"+public+api.PathVerify, "", api.VerifyRequest{
		EnrollmentID: er.EnrollmentID, Signature: base64.StdEncoding.EncodeToString(enroll.SignChallenge(priv, er.EnrollmentID, ch)),
	}, &vr); st != 200 {
		t.Fatalf("verify: %d", st)
	}
	if st := call(t, plain, "POST", "http://"+admin+api.PathApprove+er.EnrollmentID, token, nil, nil); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	var res api.ResultResponse
	if st := call(t, c, "GET", "https://"+public+api.PathResult+"?enrollment_id="+er.EnrollmentID, vr.PollToken, nil, &res); st != 200 || res.Status != "approved" || res.Tunnel == nil {
		t.Fatalf("result: %d %+v", st, res)
	}
	if !strings.Contains(p.Log.String(), `"actor":"admin"`) {
		t.Fatal("the request log does not name the admin token as the actor")
	}
	for _, secret := range []string{pc.PairingCode, vr.PollToken, token} {
		if strings.Contains(p.Log.String(), secret) {
			t.Fatalf("a secret (%.8s…) appears in the log", secret)
		}
	}
	stop(t, p)

	// Restart on the same data dir: same certificate, same token, same data.
	p = start(t, dataDir, p)
	tok2, _ := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if string(tok2) != string(tokBytes) {
		t.Fatal("admin.token changed across a restart")
	}
	if _, err := c.Get("https://" + public + "/health"); err != nil {
		t.Fatalf("the certificate changed across a restart: %v", err)
	}
	var act api.ConnectionList
	if st := call(t, plain, "GET", "http://"+admin+api.PathActive, token, nil, &act); st != 200 || len(act.Connections) != 1 || act.Connections[0].EnrollmentID != er.EnrollmentID {
		t.Fatalf("active after restart: %d %+v", st, act)
	}
	var rep api.ChainReport
	if st := call(t, plain, "GET", "http://"+admin+api.PathAuditVerify, token, nil, &rep); st != 200 || !rep.OK {
		t.Fatalf("audit chain after restart: %d %+v", st, rep)
	}
	stop(t, p)
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--tunnel-mode", "bogus"},
		{"serve", "--no-such-flag"},
		{"serve", "--db-driver", "postgres"},
		{"frobnicate"},
	} {
		cmd := exec.Command(binary(), args...)
		cmd.Env = testbin.Env()
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("oma-server %v: %v, want exit 2; output:\n%s", args, err, out)
		}
		if strings.Contains(string(out), "goroutine ") {
			t.Errorf("oma-server %v printed a stack trace", args)
		}
	}
}
