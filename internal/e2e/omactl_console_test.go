package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// widest is the width of the widest line of s, in characters.
func widest(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		n = max(n, utf8.RuneCountInString(strings.TrimRight(l, "\r")))
	}
	return n
}

// TestOmactlConsole drives the real omactl the way an admin and a script
// do: approve --wait for a VMA that is still enrolling, tables that fit
// 80 columns, get, list, the --yes rule without a terminal, --dry-run and
// an idempotent revoke.
func TestOmactlConsole(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		vmaAPI := testbin.FreeAddr(t)
		tport := strconv.Itoa(testbin.FreePort(t))
		s := startServer(t, b, "--tunnel-mode", "embedded", "--vma-api-target", vmaAPI,
			"--vma-nbd-listen", testbin.FreeAddr(t), "--tunnel-port-range", tport+"-"+tport)
		const name = "vma-console-01"

		// approve --wait before the VMA exists: it waits, approves, and
		// waits for the tunnel.
		approve := exec.Command(bin("omactl"), "--server", s.adminURL(), "--token-file", s.tokenFile,
			"approve", name, "--wait", "--timeout", "90s", "--note", "automation", "-o", "json")
		approve.Env = testbin.Env()
		var aOut, aErr testbin.Buffer
		approve.Stdout, approve.Stderr = &aOut, &aErr
		approveDone := testbin.StartGroup(t, approve)
		eventually(t, 20*time.Second, "approve --wait to wait", func() bool {
			return strings.Contains(aErr.String(), "Waiting for "+name+" to await approval")
		})

		dir := t.TempDir()
		v := startVMA(t, dir, s.enrollArgs(s.pairingCode(), name, "--timeout", "60s")...)
		if r := v.wait(60 * time.Second); r.code != 0 {
			t.Fatalf("vma-enroll: %s\napprove --wait stderr:\n%s", r, aErr.String())
		}
		eventually(t, 20*time.Second, "approve --wait to wait for the tunnel", func() bool {
			return strings.Contains(aErr.String(), "Waiting for its tunnel to connect")
		})
		select {
		case <-approveDone:
			t.Fatalf("approve --wait ended before the tunnel was up:\n%s", aErr.String())
		default:
		}
		startVMA(t, dir, "tunnel")
		select {
		case <-approveDone:
		case <-time.After(60 * time.Second):
			t.Fatalf("approve --wait did not end after the tunnel came up:\n%s", aErr.String())
		}
		var approved api.Enrollment
		if err := json.Unmarshal([]byte(aOut.String()), &approved); err != nil || approve.ProcessState.ExitCode() != 0 ||
			approved.Status != "approved" || approved.ApprovalNotes != "automation" || !strings.Contains(aErr.String(), "Tunnel of "+name+" is connected.") {
			t.Fatalf("approve --wait: exit %d, %v\nstdout:\n%s\nstderr:\n%s", approve.ProcessState.ExitCode(), err, aOut.String(), aErr.String())
		}

		// Every table fits 80 columns without a terminal.
		for _, args := range [][]string{{"active"}, {"audit"}, {"list", "--status", "all"}, {"get", name}} {
			r := s.omactl(args...)
			if r.code != 0 || widest(r.stdout) > 80 {
				t.Errorf("omactl %v: exit %d, %d columns:\n%s", args, r.code, widest(r.stdout), r.stdout)
			}
		}
		if r := s.omactl("active"); !strings.Contains(r.stdout, "connected") || strings.Contains(r.stdout, "disconnected") {
			t.Errorf("active:\n%s", r.stdout)
		}
		if r := s.omactl("get", name); !strings.Contains(r.stdout, "State:            connected since ") || !strings.Contains(r.stdout, "approval") {
			t.Errorf("get:\n%s", r.stdout)
		}

		// On a terminal, revoke asks; "n" changes nothing.
		out, code := onTerminalInput(t, 80, 24, "n\n", bin("omactl"), "--server", s.adminURL(), "--token-file", s.tokenFile, "revoke", name)
		if code != 1 || !strings.Contains(out, "Its key stops working at once. [y/N]") || !strings.Contains(out, "cancelled: nothing was changed") {
			t.Fatalf("revoke on a terminal answered n: exit %d\n%s", code, out)
		}
		// Without a terminal, revoke needs --yes: exit 2, nothing changed.
		r := s.omactl("revoke", name)
		if r.code != 2 || !strings.Contains(r.stderr, "revoke needs --yes when there is no terminal") {
			t.Fatalf("revoke without --yes: %s", r)
		}
		if r := s.omactl("revoke", name, "--dry-run"); r.code != 0 || !strings.HasPrefix(r.stdout, "Would revoke VMA "+name) {
			t.Fatalf("revoke --dry-run: %s", r)
		}
		if r := s.omactl("list", "--status", "approved", "-o", "name"); strings.TrimSpace(r.stdout) != approved.ID {
			t.Fatalf("still approved after a refused and a dry revoke: %s", r)
		}
		if r := s.omactl("revoke", name, "--yes", "--reason", "end of test"); r.code != 0 {
			t.Fatalf("revoke --yes: %s", r)
		}
		if r := s.omactl("revoke", name, "--yes", "--ignore-not-found"); r.code != 0 || !strings.Contains(r.stderr, "already revoked") {
			t.Fatalf("second revoke --ignore-not-found: %s", r)
		}
		if r := s.omactl("list", "--status", "revoked", "--name", "console", "-q"); strings.TrimSpace(r.stdout) != approved.ID {
			t.Fatalf("the revoked VMA is not found by list: %s", r)
		}
		if r := s.omactl("auth", "status"); r.code != 0 || !strings.Contains(r.stdout, "Logged in to "+s.adminURL()+" as ") {
			t.Fatalf("auth status: %s", r)
		}

		// On a terminal 120 columns wide, the audit uses them.
		out, code = onTerminal(t, 120, 50, bin("omactl"), "--server", s.adminURL(), "--token-file", s.tokenFile, "audit")
		if code != 0 || widest(out) <= 80 || widest(out) > 120 {
			t.Fatalf("audit on a 120-column terminal: exit %d, %d columns:\n%s", code, widest(out), out)
		}
	})
}

// onTerminal runs a program with stdin, stdout and stderr on a new
// pseudo-terminal of cols x rows and returns what it wrote and its exit
// status.
func onTerminal(t *testing.T, cols, rows uint16, name string, args ...string) (string, int) {
	t.Helper()
	return onTerminalInput(t, cols, rows, "", name, args...)
}

// onTerminalInput is onTerminal typing input on the terminal.
func onTerminalInput(t *testing.T, cols, rows uint16, input, name string, args ...string) (string, int) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals: %v", err)
	}
	defer ptmx.Close()
	ioctl := func(f *os.File, req uintptr, arg unsafe.Pointer) {
		t.Helper()
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(arg)); errno != 0 {
			t.Fatalf("ioctl %#x: %v", req, errno)
		}
	}
	var unlock int32
	ioctl(ptmx, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock))
	var n uint32
	ioctl(ptmx, syscall.TIOCGPTN, unsafe.Pointer(&n))
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws := struct{ rows, cols, x, y uint16 }{rows, cols, 0, 0}
	ioctl(tty, syscall.TIOCSWINSZ, unsafe.Pointer(&ws))
	cmd := exec.Command(name, args...)
	cmd.Env = append(testbin.Env(), "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	if input != "" {
		if _, err := io.WriteString(ptmx, input); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, ptmx); close(done) }() // ends with EIO when the program's side closes
	werr := cmd.Wait()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal did not close")
	}
	code := 0
	if werr != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return strings.ReplaceAll(out.String(), "\r\n", "\n"), code
}
