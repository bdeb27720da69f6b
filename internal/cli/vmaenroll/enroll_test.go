package vmaenroll

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

const testCode = "7KQ2M9XD4RTB"

type result struct {
	stdout, stderr string
	code           int
}

func runVE(t *testing.T, stdin string, tty bool, args ...string) result {
	t.Helper()
	ios, in, out, errOut := cmdutil.Test()
	in.WriteString(stdin)
	ios.InTTY, ios.ErrTTY = tty, tty
	f := NewFactory(ios)
	f.Hostname = func() (string, error) { return "vma-test-01", nil }
	f.Executable = func() (string, error) { return "/usr/local/bin/vma-enroll", nil }
	root := NewRootCmd(f)
	root.SetArgs(args)
	code := cmdutil.Run(root, ios)
	return result{out.String(), errOut.String(), code}
}

func readResult(t *testing.T, r result) Result {
	t.Helper()
	var res Result
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("stdout is not the result object: %v\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document on stdout:\n%s", r.stdout)
	}
	return res
}

func TestEnrollApproved(t *testing.T) {
	oma, srv, fp := newFakeOMA(t, testCode)
	dir := t.TempDir()
	oma.decideWhenWaiting(t, "approved", "")
	r := runVE(t, "", false, "--oma", hostOf(srv.URL), "--code", "7kq2-m9xd-4rtb", "--fingerprint", fp, "--config-dir", dir, "-o", "json", "--vma-version", "2.4.1")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	res := readResult(t, r)
	if res.Status != "approved" || len(res.Files) != 6 || res.ConfigDir != dir || !strings.HasPrefix(res.VMAFingerprint, "SHA256:") {
		t.Fatalf("result = %+v", res)
	}
	if got := oma.enrollReq[0]; got.VMAName != "vma-test-01" || got.VMAVersion != "2.4.1" || got.PairingCode != testCode {
		t.Fatalf("enroll request = %+v", got)
	}
	modes := map[string]os.FileMode{"id_ed25519": 0o600, "id_ed25519.pub": 0o644, "enrollment.json": 0o600, "ssh_config": 0o644, "known_hosts": 0o644, "vma-tunnel.service": 0o644}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %o, want %o", name, fi.Mode().Perm(), want)
		}
	}
	kh, _ := os.ReadFile(filepath.Join(dir, "known_hosts"))
	host := strings.Split(hostOf(srv.URL), ":")
	if !strings.Contains(string(kh), "["+host[0]+"]:"+host[1]+" ssh-ed25519 ") {
		t.Errorf("known_hosts does not pin the OMA at the enrollment address:\n%s", kh)
	}
	st, err := loadState(dir)
	if err != nil || st.Status != "approved" || st.Tunnel == nil || st.PollToken != "" || st.OMAFingerprint != fp {
		t.Fatalf("state = %+v, %v", st, err)
	}

	// A rerun says "already enrolled" and exits 0 without contacting the OMA.
	n := len(oma.enrollReq)
	r = runVE(t, "", false, "--oma", hostOf(srv.URL), "--code", testCode, "--fingerprint", fp, "--config-dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "Already enrolled") || len(oma.enrollReq) != n {
		t.Fatalf("rerun: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// status reads the local state.
	r = runVE(t, "", false, "status", "--config-dir", dir, "-o", "json")
	var rep map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || rep["status"] != "approved" || rep["poll_token"] != nil {
		t.Fatalf("status -o json: exit %d %s", r.code, r.stdout)
	}
	r = runVE(t, "", false, "status", "--config-dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "approved") || !strings.Contains(r.stdout, "vma_tunnel@") {
		t.Fatalf("status: exit %d %s", r.code, r.stdout)
	}
}

func TestEnrollOutcomes(t *testing.T) {
	t.Run("rejected", func(t *testing.T) {
		oma, srv, fp := newFakeOMA(t, testCode)
		oma.decideWhenWaiting(t, "rejected", "not ours\x1b[2J")
		r := runVE(t, "", false, "--oma", hostOf(srv.URL), "--code", testCode, "--fingerprint", fp, "--config-dir", t.TempDir(), "-o", "json")
		res := readResult(t, r)
		if r.code != ExitRejected || res.Status != "rejected" || !strings.Contains(r.stderr, "not ours") || strings.Contains(r.stderr, "\x1b") {
			t.Fatalf("exit %d, %+v\n%q", r.code, res, r.stderr)
		}
	})
	t.Run("expired", func(t *testing.T) {
		oma, srv, fp := newFakeOMA(t, testCode)
		oma.decideWhenWaiting(t, "expired", "")
		r := runVE(t, "", false, "--oma", hostOf(srv.URL), "--code", testCode, "--fingerprint", fp, "--config-dir", t.TempDir())
		if r.code != ExitTimeout {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		_, srv, fp := newFakeOMA(t, testCode)
		dir := t.TempDir()
		r := runVE(t, "", false, "--oma", hostOf(srv.URL), "--code", testCode, "--fingerprint", fp, "--config-dir", dir, "--timeout", "2s", "-o", "json")
		res := readResult(t, r)
		if r.code != ExitTimeout || res.Status != "timeout" || res.EnrollmentID == "" {
			t.Fatalf("exit %d %+v\n%s", r.code, res, r.stderr)
		}
		if st, _ := loadState(dir); st == nil || st.Status != "awaiting_approval" || st.PollToken == "" {
			t.Fatalf("state after timeout = %+v", st)
		}
	})
	t.Run("code rejected", func(t *testing.T) {
		_, srv, fp := newFakeOMA(t, testCode)
		r := runVE(t, "", false, "--oma", hostOf(srv.URL), "--code", "AAAA-BBBB-CCCC", "--fingerprint", fp, "--config-dir", t.TempDir(), "-o", "json")
		res := readResult(t, r)
		if r.code != ExitCodeRejected || res.Status != "pairing_code_rejected" || !strings.Contains(r.stderr, "new one") {
			t.Fatalf("exit %d %+v\n%s", r.code, res, r.stderr)
		}
	})
	t.Run("wrong fingerprint", func(t *testing.T) {
		oma, srv, _ := newFakeOMA(t, testCode)
		r := runVE(t, "", false, "--oma", hostOf(srv.URL), "--code", testCode, "--fingerprint", "sha256:"+strings.Repeat("00", 32), "--config-dir", t.TempDir())
		if r.code != ExitIdentityMismatch || !strings.Contains(r.stderr, "not the expected one") || len(oma.enrollReq) != 0 {
			t.Fatalf("exit %d (%d requests)\n%s", r.code, len(oma.enrollReq), r.stderr)
		}
	})
	t.Run("insecure", func(t *testing.T) {
		oma, srv, _ := newFakeOMA(t, testCode)
		oma.decideWhenWaiting(t, "approved", "")
		r := runVE(t, "", false, "--oma", hostOf(srv.URL), "--code", testCode, "--insecure-skip-tls-verify", "--config-dir", t.TempDir())
		if r.code != 0 || !strings.Contains(r.stderr, "WARNING") {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
	})
}

func TestUsageErrors(t *testing.T) {
	_, srv, fp := newFakeOMA(t, testCode)
	oma := hostOf(srv.URL)
	for name, args := range map[string][]string{
		"no oma":          {"--code", testCode, "--fingerprint", fp},
		"no code":         {"--oma", oma, "--fingerprint", fp},
		"nothing":         {},
		"no fingerprint":  {"--oma", oma, "--code", testCode},
		"bad code":        {"--oma", oma, "--code", "ABC", "--fingerprint", fp},
		"bad fingerprint": {"--oma", oma, "--code", testCode, "--fingerprint", "abc"},
		"bad oma":         {"--oma", "http://x", "--code", testCode, "--fingerprint", fp},
		"bad name":        {"--oma", oma, "--code", testCode, "--fingerprint", fp, "--name", "bad/name"},
		"bad output":      {"--oma", oma, "--code", testCode, "--fingerprint", fp, "-o", "yaml"},
	} {
		r := runVE(t, "", false, append(args, "--config-dir", t.TempDir())...)
		if r.code != cmdutil.ExitUsage || r.stdout != "" {
			t.Errorf("%s: exit %d, want 2; stdout %q stderr %q", name, r.code, r.stdout, r.stderr)
		}
	}
}

func TestWizard(t *testing.T) {
	oma, srv, fp := newFakeOMA(t, testCode)
	oma.decideWhenWaiting(t, "approved", "")
	dir := t.TempDir()
	// a typo in the address and one in the code are asked again; then the
	// fingerprint is shown and confirmed.
	stdin := "http://bad\n" + hostOf(srv.URL) + "\n7KQ2-M9XD\n7kq2 m9xd 4rtb\ny\n"
	r := runVE(t, stdin, true, "--config-dir", dir, "--timeout", "20s")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"OMA address", "Pairing code", "has 8 characters", fp, "Is it the same?", "\rwaiting for approval - "} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("wizard output lacks %q:\n%s", want, r.stderr)
		}
	}
	if st, _ := loadState(dir); st == nil || st.OMAFingerprint != fp {
		t.Fatalf("the confirmed fingerprint is not pinned: %+v", st)
	}

	// Not confirming the fingerprint sends nothing and exits 6.
	oma2, srv2, _ := newFakeOMA(t, testCode)
	r = runVE(t, "n\n", true, "--oma", hostOf(srv2.URL), "--code", testCode, "--config-dir", t.TempDir())
	if r.code != ExitIdentityMismatch || len(oma2.enrollReq) != 0 {
		t.Fatalf("declined fingerprint: exit %d\n%s", r.code, r.stderr)
	}
}

func TestResume(t *testing.T) {
	oma, srv, fp := newFakeOMA(t, testCode)
	dir := t.TempDir()
	r := runVE(t, "", false, "--oma", hostOf(srv.URL), "--code", testCode, "--fingerprint", fp, "--config-dir", dir, "--timeout", "1s")
	if r.code != ExitTimeout {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	oma.decideWhenWaiting(t, "approved", "")
	// no fingerprint, no OMA: all from enrollment.json; the used code is ignored.
	r = runVE(t, "", false, "--code", testCode, "--config-dir", dir, "-o", "json")
	if r.code != 0 || !strings.Contains(r.stderr, "ignoring the pairing code") {
		t.Fatalf("resume: exit %d\n%s", r.code, r.stderr)
	}
	if len(oma.enrollReq) != 1 {
		t.Fatalf("resume made a new enrollment: %d enroll requests", len(oma.enrollReq))
	}
	// --force starts a new enrollment with a new code.
	oma.mu.Lock()
	oma.codes["AAAABBBBCCCC"] = true
	oma.mu.Unlock()
	oma.decideWhenWaiting(t, "approved", "")
	r = runVE(t, "", false, "--force", "--oma", hostOf(srv.URL), "--code", "AAAA-BBBB-CCCC", "--fingerprint", fp, "--config-dir", dir, "-o", "json")
	res := readResult(t, r)
	if r.code != 0 || len(oma.enrollReq) != 2 || res.EnrollmentID == "00000000-0000-4000-8000-000000000001" {
		t.Fatalf("--force: exit %d, %d requests, %+v\n%s", r.code, len(oma.enrollReq), res, r.stderr)
	}
}

func TestPollingFallbackAndRetry(t *testing.T) {
	oma, srv, fp := newFakeOMA(t, testCode)
	oma.noLong = true
	oma.failNext = 2
	go func() {
		time.Sleep(2500 * time.Millisecond)
		oma.decide("approved", "")
	}()
	r := runVE(t, "", false, "--oma", hostOf(srv.URL), "--code", testCode, "--fingerprint", fp, "--config-dir", t.TempDir(), "--poll-interval", "1s", "--timeout", "20s")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "retrying") {
		t.Errorf("no retry message on stderr:\n%s", r.stderr)
	}
}

func TestHelp(t *testing.T) {
	ios, _, _, _ := cmdutil.Test()
	root := NewRootCmd(NewFactory(ios))
	cmds := root.Commands()
	if root.Long == "" || root.Example == "" {
		t.Error("root lacks Long or Example")
	}
	for _, c := range cmds {
		if c.Name() == "help" {
			continue
		}
		if c.Long == "" || c.Example == "" {
			t.Errorf("%s lacks Long or Example", c.Name())
		}
	}
}

func TestConfigDirNotWritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write anywhere")
	}
	_, srv, fp := newFakeOMA(t, testCode)
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	r := runVE(t, "", false, "--oma", hostOf(srv.URL), "--code", testCode, "--fingerprint", fp, "--config-dir", filepath.Join(dir, "sub"))
	if r.code != 1 || !strings.Contains(r.stderr, "run vma-enroll as root") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
}
