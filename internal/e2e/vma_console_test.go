package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// tmuxPane runs one command in a detached tmux session of a fixed size on
// its own server socket, so that the program sees a real terminal of that
// width.
type tmuxPane struct {
	t      *testing.T
	socket string
	name   string
}

func startTmux(t *testing.T, width, height int, env []string, argv ...string) *tmuxPane {
	t.Helper()
	testbin.Need(t, "apt-get install tmux; .ci/run installs it", "tmux")
	p := &tmuxPane{t: t, socket: fmt.Sprintf("oma-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()), name: "console"}
	cmd := []string{"env"}
	cmd = append(cmd, env...)
	cmd = append(cmd, argv...)
	args := append([]string{"-L", p.socket, "-f", "/dev/null", "new-session", "-d", "-s", p.name,
		"-x", fmt.Sprint(width), "-y", fmt.Sprint(height)}, cmd...)
	if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	exec.Command("tmux", "-L", p.socket, "set-option", "-t", p.name, "remain-on-exit", "on").Run()
	t.Cleanup(func() { exec.Command("tmux", "-L", p.socket, "kill-server").Run() })
	return p
}

// screen is what the pane shows now.
func (p *tmuxPane) screen() string {
	out, err := exec.Command("tmux", "-L", p.socket, "capture-pane", "-p", "-t", p.name).Output()
	if err != nil {
		p.t.Fatalf("tmux capture-pane: %v", err)
	}
	return string(out)
}

// waitFor waits until the screen matches re and returns the screen.
func (p *tmuxPane) waitFor(re *regexp.Regexp, timeout time.Duration) string {
	p.t.Helper()
	var s string
	deadline := time.Now().Add(timeout)
	for {
		s = p.screen()
		if re.MatchString(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the console never showed %q; it shows:\n%s", re, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *tmuxPane) keys(keys ...string) {
	exec.Command("tmux", append([]string{"-L", p.socket, "send-keys", "-t", p.name}, keys...)...).Run()
}

var statusLineRE = regexp.MustCompile(`(?m)^.* - (\d\d)m(\d\d)s elapsed, (\d\d)m(\d\d)s left.*$`)

// checkConsole fails when a line of the screen is wider than width-1 or
// the status line shows more than once (a redraw that wrapped).
func checkConsole(t *testing.T, screen string, width int) string {
	t.Helper()
	for _, l := range strings.Split(screen, "\n") {
		if n := utf8.RuneCountInString(strings.TrimRight(l, " ")); n > width {
			t.Errorf("a line of %d columns on a %d-column console: %q", n, width, l)
		}
	}
	lines := statusLineRE.FindAllString(screen, -1)
	if len(lines) != 1 {
		t.Fatalf("the status line shows %d times, want once (redrawn in place):\n%s", len(lines), screen)
	}
	if n := utf8.RuneCountInString(strings.TrimRight(lines[0], " ")); n >= width {
		t.Errorf("status line of %d columns on a %d-column console (the last column must stay free): %q", n, width, lines[0])
	}
	return lines[0]
}

// leftOf reads the "left" of a status line in seconds.
func leftOf(t *testing.T, line string) int {
	m := statusLineRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no times in %q", line)
	}
	mm, _ := strconv.Atoi(m[3])
	ss, _ := strconv.Atoi(m[4])
	return mm*60 + ss
}

// TestConsoleWaiting80Columns runs vma-enroll on an 80-column terminal (a
// tmux pane): the waiting line fits and is redrawn in place, also while
// the OMA is unreachable, and "left" counts down the server's approval
// window (10m here, though --timeout is 50m), also after a resume.
func TestConsoleWaiting80Columns(t *testing.T) {
	t.Parallel()
	s := startServer(t, backend{"sqlite"}, "--approval-window", "10m")
	pc := s.pairingCode()
	dir := filepath.Join(t.TempDir(), "vma")
	env := []string{"TERM=xterm"}
	args := []string{bin("vma-enroll"), "--oma", s.public, "--code", pc.PairingCode, "--fingerprint", pc.OMAFingerprint,
		"--name", "vma-console-01", "--config-dir", dir, "--timeout", "50m", "--poll-interval", "1s"}
	p := startTmux(t, 80, 30, env, args...)
	p.waitFor(regexp.MustCompile(`waiting for approval - 00m0[2-9]s elapsed`), 30*time.Second)
	line := checkConsole(t, p.screen(), 80)
	if left := leftOf(t, line); left > 10*60 || left < 9*60 {
		t.Errorf("left = %ds on a fresh wait, want the 10m approval window (not the 50m --timeout): %q", left, line)
	}
	t.Logf("80 columns, waiting:\n%s", p.screen())

	// The OMA goes away: the state with its reason still fits.
	s.kill()
	p.waitFor(regexp.MustCompile(`OMA unreachable`), 60*time.Second)
	time.Sleep(2 * time.Second) // a few redraws
	screen := p.screen()
	line = checkConsole(t, screen, 80)
	if !strings.Contains(line, "connection refused") {
		t.Errorf("the unreachable line does not say why: %q", line)
	}
	t.Logf("80 columns, OMA unreachable:\n%s", screen)

	// Interrupt, restart the OMA, resume: "left" continues from the
	// window, it does not start over at 10m (nor at 50m).
	p.keys("C-c")
	p.waitFor(regexp.MustCompile(`interrupted while waiting`), 20*time.Second)
	before := leftOf(t, line)
	if err := s.start(); err != nil {
		t.Fatalf("oma-server did not restart: %v", err)
	}
	time.Sleep(2 * time.Second)
	p2 := startTmux(t, 80, 30, env, bin("vma-enroll"), "--config-dir", dir, "--timeout", "50m", "--poll-interval", "1s")
	screen = p2.waitFor(regexp.MustCompile(`waiting for approval - 00m0[1-9]s elapsed`), 30*time.Second)
	line = checkConsole(t, screen, 80)
	if left := leftOf(t, line); left >= before || left < 8*60 {
		t.Errorf("left = %ds after the resume, want less than the %ds shown before it", left, before)
	}
	if r := s.omactl("approve", "vma-console-01"); r.code != 0 {
		t.Fatalf("approve: %s", r)
	}
	p2.waitFor(regexp.MustCompile(`Enrolled: the OMA approved`), 30*time.Second)
}

// TestConsoleNarrowAndPlain: on a 40-column terminal the line still fits;
// without a terminal (a pipe) there is no carriage return, only lines.
func TestConsoleNarrowAndPlain(t *testing.T) {
	t.Parallel()
	s := startServer(t, backend{"sqlite"})
	pc := s.pairingCode()
	p := startTmux(t, 40, 30, []string{"TERM=xterm"}, bin("vma-enroll"), "--oma", s.public, "--code", pc.PairingCode,
		"--fingerprint", pc.OMAFingerprint, "--name", "vma-narrow-01", "--config-dir", filepath.Join(t.TempDir(), "a"))
	screen := p.waitFor(regexp.MustCompile(`elapsed, \d\dm\d\ds left`), 30*time.Second)
	time.Sleep(1500 * time.Millisecond)
	checkConsole(t, p.screen(), 40)
	_ = screen

	pc = s.pairingCode()
	v := startVMA(t, filepath.Join(t.TempDir(), "b"), s.enrollArgs(pc, "vma-plain-01", "--timeout", "60s")...)
	s.waitPending("vma-plain-01")
	s.omactl("approve", "vma-plain-01")
	r := v.wait(30 * time.Second)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	if strings.Contains(r.stderr, "\r") || !strings.Contains(r.stderr, "waiting for approval: 00m") {
		t.Errorf("without a terminal, want plain lines and no carriage return:\n%q", r.stderr)
	}
}

// TestTokenLastUsed: an omactl call shows as the token's last use in
// 'oma-server token list'.
func TestTokenLastUsed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b)
		if r := s.omactl("pending"); r.code != 0 {
			t.Fatalf("pending: %s", r)
		}
		args := []string{"token", "list", "-o", "json", "--data-dir", s.dataDir, "--db-driver", b.name}
		if s.dsn != "" {
			args = append(args, "--db-dsn", s.dsn)
		}
		r := runBin(t, "oma-server", args...)
		var list []struct {
			Name       string     `json:"name"`
			LastUsedAt *time.Time `json:"last_used_at"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) == 0 {
			t.Fatalf("token list: %s", r)
		}
		if list[0].LastUsedAt == nil || time.Since(*list[0].LastUsedAt) > time.Minute {
			t.Fatalf("last_used_at = %v after omactl used the token:\n%s", list[0].LastUsedAt, r.stdout)
		}
	})
}

// TestRerunWithOtherSettings: an enrolled VMA refuses a rerun with
// another --oma or --name (exit 2, saying --force), and accepts the same.
func TestRerunWithOtherSettings(t *testing.T) {
	t.Parallel()
	s := startServer(t, backend{"sqlite"})
	pc := s.pairingCode()
	dir := filepath.Join(t.TempDir(), "vma")
	v := startVMA(t, dir, s.enrollArgs(pc, "vma-rerun-01", "--timeout", "60s")...)
	s.waitPending("vma-rerun-01")
	s.omactl("approve", "vma-rerun-01")
	if r := v.wait(30 * time.Second); r.code != 0 {
		t.Fatalf("%s", r)
	}
	other := testbin.FreeAddr(t)
	for name, args := range map[string][]string{
		"other oma":  {"--oma", other},
		"other name": {"--oma", s.public, "--name", "vma-rerun-02"},
	} {
		r := runBin(t, "vma-enroll", append(args, "--config-dir", dir)...)
		if r.code != 2 || !strings.Contains(r.stderr, "add --force") || !strings.Contains(r.stderr, "vma-rerun-01") {
			t.Errorf("%s: want exit 2 saying to add --force: %s", name, r)
		}
		r = runBin(t, "vma-enroll", append(args, "--config-dir", dir, "-o", "json")...)
		var je struct {
			Status   string `json:"status"`
			ExitCode int    `json:"exit_code"`
		}
		if json.Unmarshal([]byte(r.stdout), &je) != nil || je.Status != "usage_error" || je.ExitCode != 2 {
			t.Errorf("%s -o json: want one usage_error object on stdout: %s", name, r)
		}
	}
	if r := runBin(t, "vma-enroll", "--oma", s.public, "--name", "vma-rerun-01", "--config-dir", dir); r.code != 0 || !strings.Contains(r.stdout, "Already enrolled") {
		t.Errorf("the same settings: want exit 0 and 'Already enrolled': %s", r)
	}
}

type statusReport struct {
	Status      string `json:"status"`
	LocalStatus string `json:"local_status"`
	OMACheck    *struct {
		Result string `json:"result"`
		Error  string `json:"error"`
	} `json:"oma_check"`
	TunnelUp   *bool `json:"tunnel_up"`
	TunnelPort int   `json:"tunnel_port"`
}

func vmaStatus(t *testing.T, dir string, extra ...string) (statusReport, res) {
	t.Helper()
	r := runBin(t, "vma-enroll", append([]string{"status", "--config-dir", dir, "-o", "json"}, extra...)...)
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r)
	}
	return rep, r
}

// TestStatusAsksTheOMA: 'vma-enroll status' says what the OMA says (an SSH
// key query, embedded endpoint): enrolled, then revoked after a
// revocation; the local file with --offline or when the OMA is away, in
// bounded time; and the query writes no connection into the audit.
func TestStatusAsksTheOMA(t *testing.T) {
	t.Parallel()
	s := startServer(t, backend{"sqlite"}, "--tunnel-mode", "embedded")
	pc := s.pairingCode()
	dir := filepath.Join(t.TempDir(), "vma")
	v := startVMA(t, dir, s.enrollArgs(pc, "vma-status-01", "--timeout", "60s")...)
	s.waitPending("vma-status-01")
	s.omactl("approve", "vma-status-01")
	if r := v.wait(30 * time.Second); r.code != 0 {
		t.Fatalf("%s", r)
	}
	rep, r := vmaStatus(t, dir)
	if rep.Status != "approved" || rep.OMACheck == nil || rep.OMACheck.Result != "accepted" || rep.TunnelPort < 9081 || rep.TunnelUp == nil || *rep.TunnelUp {
		t.Fatalf("enrolled VMA: %s", r)
	}
	text := runBin(t, "vma-enroll", "status", "--config-dir", dir)
	if !strings.Contains(text.stdout, "enrolled (approved; the OMA accepts") || !strings.Contains(text.stdout, "Tunnel state:     down") {
		t.Errorf("status text: %s", text)
	}

	if r := s.omactl("revoke", "vma-status-01", "--yes"); r.code != 0 {
		t.Fatalf("revoke: %s", r)
	}
	rep, r = vmaStatus(t, dir)
	if rep.Status != "revoked" || rep.LocalStatus != "approved" || rep.OMACheck.Result != "refused" {
		t.Fatalf("revoked VMA: %s", r)
	}
	if text := runBin(t, "vma-enroll", "status", "--config-dir", dir); !strings.Contains(text.stdout, "Status:           revoked") || !strings.Contains(text.stderr, "--force") {
		t.Errorf("status text after the revocation: %s", text)
	}
	if rep, r = vmaStatus(t, dir, "--offline"); rep.Status != "approved" || rep.OMACheck.Result != "skipped" {
		t.Errorf("--offline: %s", r)
	}
	var events []struct {
		EventType string `json:"event_type"`
	}
	s.omactlJSON(&events, "audit", "--vma", "vma-status-01")
	for _, e := range events {
		if e.EventType == "connection" {
			t.Errorf("the status query logged in: audit has a connection event")
		}
	}

	s.kill()
	start := time.Now()
	rep, r = vmaStatus(t, dir, "--check-timeout", "3s")
	if rep.Status != "approved" || rep.OMACheck.Result != "unreachable" || r.code != 0 {
		t.Errorf("OMA away: want the local state and unreachable, exit 0: %s", r)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("status took %s with the OMA away and --check-timeout 3s", took)
	}
	if text := runBin(t, "vma-enroll", "status", "--config-dir", dir); !strings.Contains(text.stderr, "cannot ask the OMA") || !strings.Contains(text.stdout, "local file: the OMA did not answer") {
		t.Errorf("status text with the OMA away: %s", text)
	}
}

// TestFailureJSON: with -o json (or $OMACTL_OUTPUT, $VMA_ENROLL_OUTPUT)
// a failure is one JSON object on stdout whose exit_code is the process's
// and whose error is the message on stderr. The text of usage errors, and
// the versions, are in testdata/script (usage_errors, version_help).
func TestFailureJSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		bin    string
		env    []string
		args   []string
		code   int
		status string
	}{
		{"vma-enroll", nil, []string{"-o", "json", "--bogus"}, 2, "usage_error"},
		{"vma-enroll", nil, []string{"--bogus", "-o", "json"}, 2, "usage_error"},
		{"vma-enroll", []string{"VMA_ENROLL_OUTPUT=json"}, []string{"stauts"}, 2, "usage_error"},
		{"vma-enroll", nil, []string{"-o", "json", "--config-dir", t.TempDir()}, 2, "usage_error"}, // no --oma, no terminal
		{"vma-enroll", nil, []string{"tunnel", "-o", "json", "--config-dir", t.TempDir()}, 1, "error"},
		{"omactl", nil, []string{"approve", "-o", "json"}, 2, "usage_error"},
		{"omactl", nil, []string{"pending", "-o", "json", "--server", "http://" + testbin.FreeAddr(t), "--token", "x"}, 1, "error"},
		{"omactl", []string{"OMACTL_OUTPUT=json"}, []string{"pending", "--server", "http://" + testbin.FreeAddr(t), "--token", "x"}, 1, "error"},
		{"oma-server", nil, []string{"token", "list", "-o", "json", "--data-dir", "/nonexistent/oma", "--db-driver", "bogus"}, 2, "usage_error"},
	}
	for _, c := range cases {
		r := runBinEnv(t, c.env, c.bin, c.args...)
		var je struct {
			Status   string `json:"status"`
			ExitCode int    `json:"exit_code"`
			Error    string `json:"error"`
		}
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		if err := dec.Decode(&je); err != nil || dec.More() {
			t.Errorf("%s %v: stdout is not one JSON object (%v): %s", c.bin, c.args, err, r)
			continue
		}
		if r.code != c.code || je.ExitCode != c.code || je.Status != c.status || je.Error == "" || !strings.Contains(r.stderr, je.Error) {
			t.Errorf("%s %v: exit %d, JSON %+v; want exit %d status %s with the stderr message: %s", c.bin, c.args, r.code, je, c.code, c.status, r)
		}
	}
}

// TestWrongListener: each client pointed at the other listener says so.
func TestWrongListener(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"none", "embedded"} {
		s := startServer(t, backend{"sqlite"}, "--tunnel-mode", mode)
		pc := s.pairingCode()
		r := runBin(t, "vma-enroll", "--oma", s.admin, "--code", pc.PairingCode, "--fingerprint", pc.OMAFingerprint,
			"--name", "vma-wrong-01", "--config-dir", filepath.Join(t.TempDir(), "v"))
		if r.code != 1 || !strings.Contains(r.stderr, "admin listener") || !strings.Contains(r.stderr, "public address") {
			t.Errorf("%s: vma-enroll given the admin listener: %s", mode, r)
		}
		r = runBin(t, "omactl", "--server", "http://"+s.public, "--token-file", s.tokenFile, "pending")
		if r.code != 1 || !strings.Contains(r.stderr, "public listener") {
			t.Errorf("%s: omactl given the public listener over http: %s", mode, r)
		}
		r = runBin(t, "omactl", "--server", "https://"+s.public, "--fingerprint", pc.OMAFingerprint, "--token-file", s.tokenFile, "pending")
		if r.code != 1 || !strings.Contains(r.stderr, "public listener") {
			t.Errorf("%s: omactl given the public listener over https: %s", mode, r)
		}
		// Without --fingerprint its certificate is not trusted: a probe
		// without the token still tells which listener it is.
		r = runBin(t, "omactl", "--server", "https://"+s.public, "--token-file", s.tokenFile, "pending")
		if r.code != 1 || !strings.Contains(r.stderr, "public listener") {
			t.Errorf("%s: omactl given the public listener over https without --fingerprint: %s", mode, r)
		}
		r = runBin(t, "omactl", "--server", "https://"+s.admin, "--token-file", s.tokenFile, "pending")
		if r.code != 1 || !strings.Contains(r.stderr, "use http://") {
			t.Errorf("%s: omactl given https:// for a plain-HTTP admin listener: %s", mode, r)
		}
	}
}

// TestCompleteFlagValues: vma-enroll completes -o.
func TestCompleteFlagValues(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"__complete", "-o", ""}, {"__complete", "status", "-o", ""}, {"__complete", "tunnel", "--output", ""}} {
		r := runBin(t, "vma-enroll", args...)
		if !strings.Contains(r.stdout, "text") || !strings.Contains(r.stdout, "json") {
			t.Errorf("vma-enroll %v: %s", args, r)
		}
	}
}
