package vmaenroll

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
)

type result struct {
	stdout, stderr string
	code           int
}

func runVE(t *testing.T, stdin string, tty bool, args ...string) result {
	t.Helper()
	ios, in, out, errOut := cmdutil.Test()
	in.WriteString(stdin)
	ios.InTTY, ios.ErrTTY = tty, tty
	if tty {
		ios.ErrWidth = func() int { return 200 } // a wide terminal: the whole line
	}
	f := NewFactory(ios)
	f.Hostname = func() (string, error) { return "vma-test-01", nil }
	f.Executable = func() (string, error) { return "/usr/local/bin/vma-enroll", nil }
	f.ConfigFile = "" // not the machine's /etc/vma-enroll/vma-enroll.yaml
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
	oma := omatest.Start(t, omatest.Options{})
	code := oma.Code()
	dir := t.TempDir()
	oma.DecideWhenWaiting("approve", "")
	// the code in lower case, with dashes: any form is accepted
	r := runVE(t, "", false, "--oma", oma.Public(), "--code", strings.ToLower(code), "--fingerprint", oma.Fingerprint(), "--config-dir", dir, "--timeout", "30s", "-o", "json", "--vma-version", "2.4.1")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	res := readResult(t, r)
	if res.Status != "approved" || len(res.Files) != 6 || res.ConfigDir != dir || !strings.HasPrefix(res.VMAFingerprint, "SHA256:") {
		t.Fatalf("result = %+v", res)
	}
	list := oma.Enrollments()
	if len(list) != 1 {
		t.Fatalf("the server has %d enrollments, want 1", len(list))
	}
	if e := list[0]; e.VMAName != "vma-test-01" || e.VMAVersion != "2.4.1" || e.Status != enroll.StatusApproved || e.ID != res.EnrollmentID || e.VMAFingerprint != res.VMAFingerprint {
		t.Fatalf("server-side enrollment = %+v, result %+v", e, res)
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
	// The tunnel goes to the address the VMA enrolled through (the server
	// sends no host), pinned to the host key the server sent.
	kh, _ := os.ReadFile(filepath.Join(dir, "known_hosts"))
	host, port := hostPort(oma.Public())
	if !strings.Contains(string(kh), "["+host+"]:"+port+" "+strings.TrimSuffix(oma.HostKey, " oma-test")) {
		t.Errorf("known_hosts does not pin the OMA's host key at the enrollment address:\n%s", kh)
	}
	st, err := loadState(dir)
	if err != nil || st.Status != "approved" || st.Tunnel == nil || st.PollToken != "" || st.OMAFingerprint != oma.Fingerprint() {
		t.Fatalf("state = %+v, %v", st, err)
	}
	if st.Tunnel.User != "vma_tunnel" || len(st.Tunnel.RemoteForwards) != 1 || st.Tunnel.RemoteForwards[0].Listen != "127.0.0.1:9081" {
		t.Fatalf("tunnel = %+v, want vma_tunnel with the first pool port 9081", st.Tunnel)
	}

	// A rerun says "already enrolled" and exits 0 without contacting the
	// OMA: even with the server gone.
	oma.Stop()
	r = runVE(t, "", false, "--oma", oma.Public(), "--code", code, "--fingerprint", oma.Fingerprint(), "--config-dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "Already enrolled") {
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
		t.Parallel()
		oma := omatest.Start(t, omatest.Options{})
		oma.DecideWhenWaiting("reject", "not one of ours")
		r := runVE(t, "", false, "--oma", oma.Public(), "--code", oma.Code(), "--fingerprint", oma.Fingerprint(), "--config-dir", t.TempDir(), "--timeout", "30s", "-o", "json")
		res := readResult(t, r)
		if r.code != ExitRejected || res.Status != "rejected" || !strings.Contains(r.stderr, "reason: not one of ours") {
			t.Fatalf("exit %d, %+v\n%q", r.code, res, r.stderr)
		}
	})
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		// Nobody approves within the approval window: the server expires
		// the enrollment and vma-enroll learns it from its long poll.
		oma := omatest.Start(t, omatest.Options{ApprovalWindow: time.Second})
		dir := t.TempDir()
		r := runVE(t, "", false, "--oma", oma.Public(), "--code", oma.Code(), "--fingerprint", oma.Fingerprint(), "--config-dir", dir, "--timeout", "30s", "-o", "json")
		res := readResult(t, r)
		if r.code != ExitTimeout || res.Status != "expired" || !strings.Contains(r.stderr, "new pairing code") {
			t.Fatalf("exit %d %+v\n%s", r.code, res, r.stderr)
		}
		if st, _ := loadState(dir); st == nil || st.Status != "expired" {
			t.Fatalf("state after expiry = %+v", st)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		oma := omatest.Start(t, omatest.Options{})
		dir := t.TempDir()
		r := runVE(t, "", false, "--oma", oma.Public(), "--code", oma.Code(), "--fingerprint", oma.Fingerprint(), "--config-dir", dir, "--timeout", "2s", "-o", "json")
		res := readResult(t, r)
		if r.code != ExitTimeout || res.Status != "timeout" || res.EnrollmentID == "" {
			t.Fatalf("exit %d %+v\n%s", r.code, res, r.stderr)
		}
		if st, _ := loadState(dir); st == nil || st.Status != "awaiting_approval" || st.PollToken == "" {
			t.Fatalf("state after timeout = %+v", st)
		}
		if list := oma.Enrollments(); len(list) != 1 || list[0].Status != enroll.StatusAwaitingApproval {
			t.Fatalf("server-side enrollments after the timeout: %+v", list)
		}
	})
	t.Run("code rejected", func(t *testing.T) {
		t.Parallel()
		oma := omatest.Start(t, omatest.Options{})
		oma.Code()
		r := runVE(t, "", false, "--oma", oma.Public(), "--code", "AAAA-BBBB-CCCC", "--fingerprint", oma.Fingerprint(), "--config-dir", t.TempDir(), "-o", "json")
		res := readResult(t, r)
		if r.code != ExitCodeRejected || res.Status != "pairing_code_rejected" || !strings.Contains(r.stderr, "new one") {
			t.Fatalf("exit %d %+v\n%s", r.code, res, r.stderr)
		}
		// The key was made and is kept for the next try: its fingerprint
		// is reported.
		if !strings.HasPrefix(res.VMAFingerprint, "SHA256:") {
			t.Fatalf("vma_fingerprint %q after a refused code", res.VMAFingerprint)
		}
		if evs := oma.Events(enroll.EventEnrollmentFailed); len(evs) != 1 {
			t.Fatalf("the server audited %d failed enrollments, want 1", len(evs))
		}
	})
	t.Run("used code", func(t *testing.T) {
		t.Parallel()
		oma := omatest.Start(t, omatest.Options{})
		code := oma.Code()
		oma.DecideWhenWaiting("approve", "")
		if r := runVE(t, "", false, "--oma", oma.Public(), "--code", code, "--fingerprint", oma.Fingerprint(), "--config-dir", t.TempDir(), "--timeout", "30s"); r.code != 0 {
			t.Fatalf("first use: exit %d\n%s", r.code, r.stderr)
		}
		r := runVE(t, "", false, "--oma", oma.Public(), "--code", code, "--fingerprint", oma.Fingerprint(), "--config-dir", t.TempDir())
		if r.code != ExitCodeRejected {
			t.Fatalf("second use of a code: exit %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("wrong fingerprint", func(t *testing.T) {
		t.Parallel()
		oma := omatest.Start(t, omatest.Options{})
		r := runVE(t, "", false, "--oma", oma.Public(), "--code", oma.Code(), "--fingerprint", "sha256:"+strings.Repeat("00", 32), "--config-dir", t.TempDir())
		if r.code != ExitIdentityMismatch || !strings.Contains(r.stderr, "not the expected one") {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		// Nothing reached the server: no enrollment, no failed attempt.
		if n, m := len(oma.Enrollments()), len(oma.Events(enroll.EventEnrollmentFailed)); n != 0 || m != 0 {
			t.Fatalf("the server saw %d enrollments and %d failed attempts; want none", n, m)
		}
	})
	t.Run("insecure", func(t *testing.T) {
		t.Parallel()
		oma := omatest.Start(t, omatest.Options{})
		oma.DecideWhenWaiting("approve", "")
		r := runVE(t, "", false, "--oma", oma.Public(), "--code", oma.Code(), "--insecure-skip-tls-verify", "--config-dir", t.TempDir(), "--timeout", "30s")
		if r.code != 0 || !strings.Contains(r.stderr, "WARNING") {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		oma := omatest.Start(t, omatest.Options{})
		code := oma.Code()
		oma.Stop()
		r := runVE(t, "", false, "--oma", oma.Public(), "--code", code, "--fingerprint", oma.Fingerprint(), "--config-dir", t.TempDir())
		if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the OMA") || !strings.Contains(r.stderr, "port") {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
	})
}

func TestUsageErrors(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	code, fp := oma.Code(), oma.Fingerprint()
	for name, args := range map[string][]string{
		"no oma":          {"--code", code, "--fingerprint", fp},
		"no code":         {"--oma", oma.Public(), "--fingerprint", fp},
		"nothing":         {},
		"no fingerprint":  {"--oma", oma.Public(), "--code", code},
		"bad code":        {"--oma", oma.Public(), "--code", "ABC", "--fingerprint", fp},
		"bad fingerprint": {"--oma", oma.Public(), "--code", code, "--fingerprint", "abc"},
		"bad oma":         {"--oma", "http://x", "--code", code, "--fingerprint", fp},
		"bad name":        {"--oma", oma.Public(), "--code", code, "--fingerprint", fp, "--name", "bad/name"},
		"bad output":      {"--oma", oma.Public(), "--code", code, "--fingerprint", fp, "-o", "yaml"},
	} {
		r := runVE(t, "", false, append(args, "--config-dir", t.TempDir())...)
		if r.code != cmdutil.ExitUsage || r.stdout != "" {
			t.Errorf("%s: exit %d, want 2; stdout %q stderr %q", name, r.code, r.stdout, r.stderr)
		}
	}
	// Usage errors are found before anything is sent.
	if n := len(oma.Enrollments()); n != 0 {
		t.Fatalf("usage errors made %d enrollments", n)
	}
}

func TestWizard(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	code := oma.Code()
	oma.DecideWhenWaiting("approve", "")
	dir := t.TempDir()
	// a typo in the address and one in the code are asked again; then the
	// fingerprint is shown and confirmed.
	spaced := strings.ToLower(strings.ReplaceAll(code, "-", " "))
	stdin := "http://bad\n" + oma.Public() + "\n" + code[:9] + "\n" + spaced + "\ny\n"
	r := runVE(t, stdin, true, "--config-dir", dir, "--timeout", "20s")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"OMA address", "Pairing code", "has 8 characters", oma.Fingerprint(), "Is it the same?", "\rwaiting for approval - "} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("wizard output lacks %q:\n%s", want, r.stderr)
		}
	}
	if st, _ := loadState(dir); st == nil || st.OMAFingerprint != oma.Fingerprint() {
		t.Fatalf("the confirmed fingerprint is not pinned: %+v", st)
	}

	// Not confirming the fingerprint sends nothing and exits 6.
	oma2 := omatest.Start(t, omatest.Options{})
	r = runVE(t, "n\n", true, "--oma", oma2.Public(), "--code", oma2.Code(), "--config-dir", t.TempDir())
	if r.code != ExitIdentityMismatch || len(oma2.Enrollments()) != 0 {
		t.Fatalf("declined fingerprint: exit %d\n%s", r.code, r.stderr)
	}
}

func TestResume(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	code := oma.Code()
	dir := t.TempDir()
	r := runVE(t, "", false, "--oma", oma.Public(), "--code", code, "--fingerprint", oma.Fingerprint(), "--config-dir", dir, "--timeout", "1s")
	if r.code != ExitTimeout {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	first, _ := loadState(dir)
	oma.DecideWhenWaiting("approve", "")
	// no fingerprint, no OMA: all from enrollment.json; the used code is ignored.
	r = runVE(t, "", false, "--code", code, "--config-dir", dir, "--timeout", "30s", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stderr, "ignoring the pairing code") {
		t.Fatalf("resume: exit %d\n%s", r.code, r.stderr)
	}
	if res := readResult(t, r); res.EnrollmentID != first.EnrollmentID {
		t.Fatalf("resume ended with enrollment %s, want %s", res.EnrollmentID, first.EnrollmentID)
	}
	if list := oma.Enrollments(); len(list) != 1 {
		t.Fatalf("resume made a new enrollment: the server has %d", len(list))
	}
	// --force starts a new enrollment with a new code; approving it revokes
	// the first one (same VMA name).
	oma.DecideWhenWaiting("approve", "")
	r = runVE(t, "", false, "--force", "--oma", oma.Public(), "--code", oma.Code(), "--fingerprint", oma.Fingerprint(), "--config-dir", dir, "--timeout", "30s", "-o", "json")
	res := readResult(t, r)
	if r.code != 0 || res.EnrollmentID == first.EnrollmentID {
		t.Fatalf("--force: exit %d, %+v\n%s", r.code, res, r.stderr)
	}
	statuses := map[string]enroll.Status{}
	for _, e := range oma.Enrollments() {
		statuses[e.ID] = e.Status
	}
	if len(statuses) != 2 || statuses[first.EnrollmentID] != enroll.StatusRevoked || statuses[res.EnrollmentID] != enroll.StatusApproved {
		t.Fatalf("server-side statuses after re-enrolling: %v", statuses)
	}
}

// TestServerRestartWhileWaiting stops oma-server while vma-enroll waits
// and starts it again on the same address and store: vma-enroll reports
// the outage, keeps retrying, and finishes once the admin approves.
func TestServerRestartWhileWaiting(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	code := oma.Code()
	dir := t.TempDir()
	done := make(chan result, 1)
	go func() {
		done <- runVE(t, "", false, "--oma", oma.Public(), "--code", code, "--fingerprint", oma.Fingerprint(), "--config-dir", dir, "--poll-interval", "1s", "--timeout", "60s")
	}()
	// Wait until vma-enroll waits for the decision.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _ := loadState(dir)
		if st != nil && st.Status == string(enroll.StatusAwaitingApproval) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("vma-enroll did not reach the waiting state")
		}
		time.Sleep(20 * time.Millisecond)
	}
	oma.Restart(2500 * time.Millisecond)
	oma.DecideWhenWaiting("approve", "")
	r := <-done
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "OMA unreachable") || !strings.Contains(r.stderr, "retrying") {
		t.Errorf("no retry message on stderr:\n%s", r.stderr)
	}
	if list := oma.Enrollments(); len(list) != 1 || list[0].Status != enroll.StatusApproved {
		t.Fatalf("server-side enrollments: %+v", list)
	}
}

func TestConfigDirNotWritable(t *testing.T) {
	if os.Geteuid() == 0 {
		rerunAsNobody(t) // root may write anywhere: CI runs as root, so this runs as nobody there
		return
	}
	oma := omatest.Start(t, omatest.Options{})
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	r := runVE(t, "", false, "--oma", oma.Public(), "--code", oma.Code(), "--fingerprint", oma.Fingerprint(), "--config-dir", filepath.Join(dir, "sub"))
	if r.code != 1 || !strings.Contains(r.stderr, "run vma-enroll as root") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
}

// hostPort splits an address into host and port strings.
func hostPort(addr string) (string, string) {
	i := strings.LastIndex(addr, ":")
	return addr[:i], addr[i+1:]
}

// Finding 13 of issue 13: vma-tunnel.service hides /tmp and /home
// (PrivateTmp, ProtectHome); an enrollment whose config directory is there
// says that the unit cannot run as written, and one elsewhere does not.
func TestEnrollWarnsWhenTheUnitCannotRun(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	enrollInto := func(dir string) result {
		t.Helper()
		code := oma.Code()
		oma.DecideWhenWaiting("approve", "")
		r := runVE(t, "", false, "--oma", oma.Public(), "--code", code, "--fingerprint", oma.Fingerprint(),
			"--config-dir", dir, "--timeout", "30s", "--name", "vma-"+filepath.Base(dir)[len(filepath.Base(dir))-6:])
		if r.code != 0 {
			t.Fatalf("enroll into %s: exit %d\n%s", dir, r.code, r.stderr)
		}
		return r
	}
	hidden, err := os.MkdirTemp("/tmp", "vma-unit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(hidden) })
	r := enrollInto(hidden)
	if !strings.Contains(r.stderr, "vma-tunnel.service cannot start the tunnel as written") || !strings.Contains(r.stderr, "PrivateTmp") {
		t.Errorf("no warning for a config dir under /tmp:\n%s", r.stderr)
	}
	visible, err := os.MkdirTemp("/var/lib", "vma-unit-")
	if err != nil {
		t.Skipf("no directory outside /tmp and /home to enroll into: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(visible) })
	if r := enrollInto(visible); strings.Contains(r.stderr, "cannot start the tunnel") {
		t.Errorf("a warning for a config dir under /var/lib:\n%s", r.stderr)
	}
}
