// Package testbin is what the tests that run the real binaries share
// (docs/design.md §9): building oma-server, omactl and vma-enroll once per test
// package, the environment they run in, running, stopping and killing
// them, a buffer their output goes to, free loopback addresses, small
// loopback servers, and the wait for a started oma-server to answer. Each
// package keeps its own process types and flags. Only tests import it; no
// binary links it.
package testbin

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// module is the import path of the commands Build builds (cmd/<name>).
const module = "github.com/oma-enroll/oma-enroll"

// Main builds the commands named by cmds (oma-server, omactl, vma-enroll)
// into a temporary directory, sets *dir to it, runs the tests of m and
// removes the directory. It returns the code for os.Exit; a failed build
// prints why on stderr and returns 1. The binaries are built as plain `go
// build` does, without -race, whatever flags the tests run with.
func Main(m *testing.M, dir *string, cmds ...string) int {
	d, err := os.MkdirTemp("", "oma-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(d)
	if err := Build(d, cmds...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*dir = d
	return m.Run()
}

// Build builds the commands named by cmds into dir, one file per command
// named like it.
func Build(dir string, cmds ...string) error {
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, c := range cmds {
		args = append(args, module+"/cmd/"+c)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("building %s failed: %v\n%s", strings.Join(cmds, ", "), err, out)
	}
	return nil
}

// Env is the environment of a binary under test: the test's own minus
// every setting that could change its behaviour (OMA_*, OMACTL_*,
// VMA_ENROLL_*, COLUMNS), with NO_COLOR=1 and then extra (KEY=value) added.
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OMA_") || strings.HasPrefix(k, "OMACTL_") || strings.HasPrefix(k, "VMA_ENROLL_") || k == "COLUMNS" {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "NO_COLOR=1"), extra...)
}

// Run runs the binary at path with args to completion in Env(env...)
// and returns what it printed and its exit code. A binary that cannot run
// at all fails the test; one still running after two minutes is killed.
func Run(t testing.TB, env []string, path string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = Env(env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: %v", filepath.Base(path), err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errOut.String(), code
}

// Stop ends the process of cmd, whose exited channel closes once it has
// exited: SIGTERM, then SIGKILL if it is still running after grace. It
// returns once the process has exited.
func Stop(cmd *exec.Cmd, exited <-chan struct{}, grace time.Duration) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-exited
	}
}

// StartGroup starts cmd in a process group of its own, so that KillGroup
// reaches what it started (ssh) too and Wait does not hang on pipes those
// still hold; the group is killed when the test ends. The channel closes
// once cmd has exited.
func StartGroup(t testing.TB, cmd *exec.Cmd) <-chan struct{} {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		KillGroup(cmd)
		<-exited
	})
	return exited
}

// KillGroup kills the process group of a command StartGroup started.
func KillGroup(cmd *exec.Cmd) {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// Buffer is a bytes.Buffer that a process (or a command) may write while
// a test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FreePort returns a free loopback port: it listens on 127.0.0.1:0 and
// closes again, so another process may take the port before the caller
// does (the callers that start servers retry).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr is FreePort as an address, 127.0.0.1:port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// Serve listens on addr (127.0.0.1:0 for a free port) until the test
// ends, hands every connection to handle in a goroutine of its own and
// closes it when handle returns. It returns the address it listens on.
func Serve(t testing.TB, addr string, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}

// WaitHealthy waits until url (an oma-server's admin /health) answers 200
// and, when tokenFile is not "", that file (the admin token oma-server
// writes) exists, and then that the server takes that token: a server of
// a parallel test that took the port meanwhile does not pass for this one
// (errOtherServer). It gives up when exited is closed (the process ended;
// nil for never) or after 30 seconds. The certificate of an HTTPS url is
// not checked: it is the test's own server on loopback.
func WaitHealthy(url, tokenFile string, exited <-chan struct{}) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test's own server on loopback (--admin-tls)
	}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited before it answered")
		default:
		}
		if res, err := hc.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK && (tokenFile == "" || exists(tokenFile)) {
				if tokenFile == "" {
					return nil
				}
				return ownServer(hc, strings.TrimSuffix(url, "/health"), tokenFile)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("no healthy answer within 30s")
}

// errOtherServer means another process answers on the port: between
// FreeAddr and the server's bind, a server of a parallel test took it (and
// this one exited with "address already in use"). StartServer tries other
// ports.
var errOtherServer = errors.New("another server answers on this address (its port was taken meanwhile)")

// ownServer checks that the server at base is the one that wrote
// tokenFile: it takes that admin token.
func ownServer(hc *http.Client, base, tokenFile string) error {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodGet, base+api.PathPending, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode == http.StatusUnauthorized {
		return errOtherServer
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Eventually polls cond every 50 ms until it holds, and fails the test
// after timeout, naming what it waited for.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PrivateKey reads the Ed25519 private key file at path (as vma-enroll
// writes id_ed25519), failing the test when it cannot.
func PrivateKey(t testing.TB, path string) ed25519.PrivateKey {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := sshkey.ParsePrivateKey(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return priv
}
