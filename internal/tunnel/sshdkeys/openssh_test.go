package sshdkeys_test

// The openssh tunnel mode against a real sshd: the test starts
// /usr/sbin/sshd on a free loopback port with the Match block that
// `oma-server sshd-config` prints, as the tunnel user "omatest" (created
// when missing), and drives it with the OpenSSH client.
//
// sshd must run as root to switch to the tunnel user, and sshd insists that
// an AuthorizedKeysCommand binary and its directories are root's; so these
// tests need root (CI runs them as root through .ci/run) and say so when
// they cannot run.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/sshdkeys"
)

// osshUser is the tunnel user of these tests.
const osshUser = "omatest"

// osshPrereqs fails or skips, saying why, when sshd cannot run here, and
// returns the sshd path and the tunnel user.
func osshPrereqs(t *testing.T) (string, *user.User) {
	t.Helper()
	testbin.NeedRoot(t, "sshd has to switch to the tunnel user and run a root-owned AuthorizedKeysCommand; CI runs the tests as root (.ci/run)")
	sshd := testbin.Need(t, "apt-get install openssh-server; .ci/run does", "sshd")
	testbin.Need(t, "apt-get install openssh-client", "ssh")
	// sshd refuses to start without its privilege separation directory,
	// which the package creates at boot only.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("create /run/sshd: %v", err)
	}
	return sshd, osshTestUser(t)
}

var osshUserOnce sync.Mutex

// osshTestUser returns the unprivileged tunnel user, creating it (system
// account, home directory, no login shell) when missing. A new account gets
// the password "*" instead of useradd's locked "!", which sshd with UsePAM
// no refuses; no password can match "*".
func osshTestUser(t *testing.T) *user.User {
	t.Helper()
	osshUserOnce.Lock()
	defer osshUserOnce.Unlock()
	if u, err := user.Lookup(osshUser); err == nil {
		return u
	}
	if out, err := exec.Command("useradd", "--create-home", "--shell", "/usr/sbin/nologin", osshUser).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", osshUser, err, out)
	}
	if out, err := exec.Command("usermod", "-p", "*", osshUser).CombinedOutput(); err != nil {
		t.Fatalf("usermod -p '*' %s: %v\n%s", osshUser, err, out)
	}
	u, err := user.Lookup(osshUser)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// osshBinary builds oma-server into a directory sshd accepts for an
// AuthorizedKeysCommand (root-owned, not group/world writable, up to /).
func osshBinary(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	if err := testbin.Build(tmp, "oma-server"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(tmp, "oma-server"))
	if err != nil {
		t.Fatal(err)
	}
	var tried []string
	for _, base := range []string{"/var/cache", "/var/lib", "/root", "/run", "/opt"} {
		if !osshRootChain(base) {
			tried = append(tried, base+" (not root-owned or writable by others)")
			continue
		}
		dir, err := os.MkdirTemp(base, "oma-sshd-test-")
		if err != nil {
			tried = append(tried, base+": "+err.Error())
			continue
		}
		os.Chmod(dir, 0o755)
		bin := filepath.Join(dir, "oma-server")
		if err := os.WriteFile(bin, data, 0o755); err == nil {
			if err := exec.Command(bin, "version").Run(); err == nil {
				t.Cleanup(func() { os.RemoveAll(dir) })
				return bin
			} else {
				tried = append(tried, bin+": "+err.Error())
			}
		}
		os.RemoveAll(dir)
	}
	t.Fatalf("no directory for a root-owned AuthorizedKeysCommand binary: %s", strings.Join(tried, "; "))
	return ""
}

func osshRootChain(p string) bool {
	for ; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return false
		}
		if p == filepath.Dir(p) {
			return true
		}
	}
}

// osshEcho answers each connection with prefix and the bytes it got.
func osshEcho(t *testing.T, prefix string) string {
	t.Helper()
	return testbin.Serve(t, "127.0.0.1:0", func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 256)
		n, _ := c.Read(buf)
		c.Write(append([]byte(prefix), buf[:n]...))
	})
}

// osshRoundTrip sends msg to addr and returns everything it answers.
func osshRoundTrip(addr, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(msg))
	b, err := io.ReadAll(c)
	return string(b), err
}

// osshd is a running sshd.
type osshd struct {
	user       string // the user the client logs in as
	port       int
	hostKeyPub string // path of the host key's .pub
	knownHosts string
	log        *testbin.Buffer
}

// osshStartSSHD starts sshd with a base configuration plus match (the block
// oma-server sshd-config printed), after `sshd -t` accepted it.
func osshStartSSHD(t *testing.T, sshdPath, match string) *osshd {
	t.Helper()
	return osshStartSSHDFor(t, sshdPath, osshUser, match)
}

// osshStartSSHDFor is osshStartSSHD for the tunnel user name.
func osshStartSSHDFor(t *testing.T, sshdPath, name, match string) *osshd {
	t.Helper()
	dir := t.TempDir()
	hk, err := sshkey.LoadOrGenerateFile(filepath.Join(dir, "ssh_host_ed25519_key"), "oma-test-sshd")
	if err != nil {
		t.Fatal(err)
	}
	port := testbin.FreePort(t)
	cfg := filepath.Join(dir, "sshd_config")
	base := strings.Join([]string{
		"# test sshd for the openssh tunnel mode",
		"HostKey " + hk.PrivatePath,
		"ListenAddress 127.0.0.1",
		"PidFile none",
		"UsePAM no",
		"StrictModes yes",
		"LogLevel VERBOSE",
		"AllowUsers " + name,
		"AuthorizedKeysFile none",
		"PasswordAuthentication no",
		"Subsystem sftp internal-sftp",
		"",
	}, "\n")
	if err := os.WriteFile(cfg, []byte(base+match), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sshdPath, "-t", "-f", cfg, "-p", strconv.Itoa(port)).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t rejects the configuration: %v\n%s\n--- config:\n%s%s", err, out, base, match)
	}
	d := &osshd{user: name, port: port, hostKeyPub: hk.PublicPath, knownHosts: filepath.Join(dir, "known_hosts"), log: &testbin.Buffer{}}
	pub, _ := os.ReadFile(hk.PublicPath)
	if err := os.WriteFile(d.knownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", port, pub)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfg, "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("sshd log:\n%s", d.log.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return d
		}
		select {
		case <-done:
			t.Fatalf("sshd exited:\n%s", d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on %d:\n%s", port, d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sshArgs are the client options of a VMA: its key only, the pinned host
// key, no user config, no prompts.
func (d *osshd) sshArgs(key string, extra ...string) []string {
	args := []string{"-F", "/dev/null", "-i", key, "-p", strconv.Itoa(d.port),
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + d.knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=10", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=5"}
	args = append(args, extra...)
	return append(args, d.user+"@127.0.0.1")
}

// run runs ssh to completion (at most 20 s) and returns its output.
func (d *osshd) run(t *testing.T, key string, extra []string, command ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", append(d.sshArgs(key, extra...), command...)...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("ssh %v still running after 20s, want it to end", extra)
	}
	return string(out), err
}

// osshBg is an ssh process running in the background.
type osshBg struct {
	cmd  *exec.Cmd
	out  *testbin.Buffer
	done chan error
}

func (d *osshd) start(t *testing.T, key string, extra ...string) *osshBg {
	t.Helper()
	cmd := exec.Command("ssh", d.sshArgs(key, append([]string{"-N"}, extra...)...)...)
	b := &osshBg{cmd: cmd, out: &testbin.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = b.out, b.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return b
}

// waitFor polls until ok returns true or the ssh process ends.
func (b *osshBg) waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-b.done:
			b.done <- err
			t.Fatalf("%s: ssh exited: %v\n%s", what, err, b.out.String())
		default:
		}
		if ok() {
			return
		}
	}
	t.Fatalf("%s: not within 15s; ssh said:\n%s", what, b.out.String())
}

// osshVMAEnv is what one VMA's checks need.
type osshVMAEnv struct {
	d          *osshd
	key        string // private key file
	nbd        string // NBD target (echo "nbd:")
	other      string // another local service (echo "other:")
	vmaAPI     string // the VMA API (echo "vma:")
	tunnelPort int
}

// checkRestrictedTunnel proves that the VMA's key permits exactly its
// forwards and returns its running tunnel (-L to the NBD target and -R on
// its tunnel port, as vma-enroll's ssh_config has them).
func checkRestrictedTunnel(t *testing.T, v osshVMAEnv) *osshBg {
	t.Helper()
	d := v.d

	// The VMA's own tunnel works: -L to the NBD target carries bytes, -R on
	// its tunnel port reaches the VMA API. (This also shows the key logs
	// in, so the refusals below are sshd's restrictions, not a failed login.)
	lNBD := testbin.FreePort(t)
	tun := d.start(t, v.key,
		"-L", fmt.Sprintf("127.0.0.1:%d:%s", lNBD, v.nbd),
		"-R", fmt.Sprintf("127.0.0.1:%d:%s", v.tunnelPort, v.vmaAPI))
	tun.waitFor(t, "the NBD forward", func() bool {
		got, _ := osshRoundTrip(fmt.Sprintf("127.0.0.1:%d", lNBD), "block-0")
		return got == "nbd:block-0"
	})
	tun.waitFor(t, "the reverse forward on the tunnel port", func() bool {
		got, _ := osshRoundTrip(fmt.Sprintf("127.0.0.1:%d", v.tunnelPort), "ping")
		return got == "vma:ping"
	})
	payload := bytes.Repeat([]byte("0123456789abcdef"), 12)
	if got, err := osshRoundTrip(fmt.Sprintf("127.0.0.1:%d", lNBD), string(payload)); err != nil || got != "nbd:"+string(payload) {
		t.Errorf("NBD payload = %q, %v", got, err)
	}

	// A shell and a command are refused: sshd opens no session channel
	// (MaxSessions 0), so not even the login shell starts.
	marker := filepath.Join(t.TempDir(), "pwned")
	for _, c := range []struct {
		what  string
		extra []string
		cmd   []string
	}{
		{"a shell", []string{"-T"}, nil},
		{"a shell with a PTY", []string{"-tt"}, nil},
		{"a command", nil, []string{"echo PWNED; touch " + marker}},
		{"the sftp subsystem", []string{"-s"}, []string{"sftp"}},
	} {
		out, err := d.run(t, v.key, c.extra, c.cmd...)
		if err == nil || strings.Contains(out, "PWNED") || !strings.Contains(out, "open failed") {
			t.Errorf("%s was not refused by sshd (want a refused session channel): %v\n%s", c.what, err, out)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command created its marker file")
	}
	// -R on another port is refused.
	otherPort := testbin.FreePort(t)
	if out, err := d.run(t, v.key, []string{"-N", "-R", fmt.Sprintf("127.0.0.1:%d:%s", otherPort, v.vmaAPI)}); err == nil ||
		!strings.Contains(out, "remote port forwarding failed") {
		t.Errorf("-R on port %d (not the VMA's) was not refused: %v\n%s", otherPort, err, out)
	}
	// -R on the VMA's port but on all interfaces is not given a public
	// socket: refused, or bound to loopback only (GatewayPorts no).
	if out, err := d.run(t, v.key, []string{"-N", "-o", "ExitOnForwardFailure=yes", "-R", fmt.Sprintf("0.0.0.0:%d:%s", otherPort, v.vmaAPI)}); err == nil ||
		!strings.Contains(out, "remote port forwarding failed") {
		t.Errorf("-R 0.0.0.0:%d was not refused: %v\n%s", otherPort, err, out)
	}
	// -L to another target is refused: the local end accepts, sshd refuses
	// the channel, the connection ends without the service's answer.
	lOther := testbin.FreePort(t)
	bad := d.start(t, v.key, "-L", fmt.Sprintf("127.0.0.1:%d:%s", lOther, v.other))
	bad.waitFor(t, "-L to another target listening locally", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", lOther))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if got, _ := osshRoundTrip(fmt.Sprintf("127.0.0.1:%d", lOther), "hello"); got != "" {
		t.Errorf("-L to %s carried data: %q", v.other, got)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(bad.out.String(), "open failed") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(bad.out.String(), "open failed") {
		t.Errorf("-L to %s: ssh did not report a refused channel:\n%s", v.other, bad.out.String())
	}
	bad.cmd.Process.Kill()
	<-bad.done
	// The tunnel is still up after all that.
	if got, _ := osshRoundTrip(fmt.Sprintf("127.0.0.1:%d", v.tunnelPort), "again"); got != "vma:again" {
		t.Errorf("reverse forward after the refusals = %q", got)
	}
	return tun
}

// checkLoginRefused proves that the key cannot log in any more.
func checkLoginRefused(t *testing.T, d *osshd, key string) {
	t.Helper()
	out, err := d.run(t, key, []string{"-N"})
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("the revoked key still logs in (or fails otherwise): %v\n%s", err, out)
	}
}

// checkEnded waits for a live tunnel to be cut.
func checkEnded(t *testing.T, b *osshBg, what string) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the live tunnel is still up 10s after revocation", what)
	}
}

// osshSSHDConfig runs `oma-server sshd-config` and returns the block.
func osshSSHDConfig(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"sshd-config"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = testbin.Env()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("oma-server sshd-config %v: %v\n%s", args, err, stderr.String())
	}
	if !strings.Contains(string(out), "Match User "+osshUser+"\n") {
		t.Fatalf("no Match block:\n%s", out)
	}
	return string(out)
}

// osshResetKeys removes what earlier runs left in the tunnel user's .ssh.
func osshResetKeys(t *testing.T, u *user.User) string {
	t.Helper()
	path := filepath.Join(u.HomeDir, ".ssh", "authorized_keys")
	for _, p := range []string{path, path + ".bak", path + ".lock"} {
		os.Remove(p)
	}
	t.Cleanup(func() {
		for _, p := range []string{path, path + ".bak", path + ".lock"} {
			os.Remove(p)
		}
	})
	return path
}

func osshKey(t *testing.T, name string) *sshkey.KeyPair {
	t.Helper()
	kp, err := sshkey.LoadOrGenerate(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TestOpenSSHAuthorizedKeysFile: sshd reads the file the manager writes.
func TestOpenSSHAuthorizedKeysFile(t *testing.T) {
	sshdPath, u := osshPrereqs(t)
	bin := osshBinary(t)
	path := osshResetKeys(t, u)
	nbd, other, vmaAPI := osshEcho(t, "nbd:"), osshEcho(t, "other:"), osshEcho(t, "vma:")

	keys, err := sshdkeys.NewAuthorizedKeysFile(sshdkeys.AuthorizedKeysConfig{Path: path, NBDTarget: nbd, Owner: u})
	if err != nil {
		t.Fatal(err)
	}
	// A key the admin put there by hand stays, byte for byte.
	hand := osshKey(t, "hand")
	handLine := `no-pty,permitopen="` + other + `" ` + sshkey.AuthorizedKey(hand.Public, "admin@jump") + "\n"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Dir(path), mustAtoi(t, u.Uid), mustAtoi(t, u.Gid))
	if err := os.WriteFile(path, []byte(handLine), 0o600); err != nil {
		t.Fatal(err)
	}

	vma := osshKey(t, "vma1")
	tport := testbin.FreePort(t)
	e := enroll.Enrollment{ID: "0b9d3c4e-1111-4222-8333-444455556666", VMAName: "vma 1", Status: enroll.StatusApproved,
		VMAPublicKey: sshkey.AuthorizedKey(vma.Public, ""), TunnelPort: &tport}
	if _, err := keys.Add(&e); err != nil {
		t.Fatal(err)
	}
	content, _ := os.ReadFile(path)
	wantLine := fmt.Sprintf(`restrict,port-forwarding,command="/bin/false",permitopen="%s",permitlisten="127.0.0.1:%d" %s vma-enroll:%s:vma 1`,
		nbd, tport, sshkey.AuthorizedKey(vma.Public, ""), e.ID)
	if string(content) != handLine+wantLine+"\n" {
		t.Fatalf("authorized_keys:\n%s\nwant\n%s%s", content, handLine, wantLine)
	}
	fi, _ := os.Stat(path)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || strconv.Itoa(int(st.Gid)) != u.Gid || fi.Mode().Perm() != 0o640 {
		t.Fatalf("authorized_keys owner %d:%d mode %v, want root, group %s and 0640", st.Uid, st.Gid, fi.Mode().Perm(), u.Gid)
	}

	match := osshSSHDConfig(t, bin, "--keys-from", "file", "--tunnel-user", osshUser, "--nbd-target", nbd,
		"--authorized-keys-file", "~"+osshUser+"/.ssh/authorized_keys")
	if !strings.Contains(match, "\tAuthorizedKeysFile "+path+"\n") {
		t.Fatalf("the block does not point sshd at %s:\n%s", path, match)
	}
	d := osshStartSSHD(t, sshdPath, match)
	env := osshVMAEnv{d: d, key: vma.PrivatePath, nbd: nbd, other: other, vmaAPI: vmaAPI, tunnelPort: tport}
	tun := checkRestrictedTunnel(t, env)

	// Revocation: the line goes, the live session is ended, the key is
	// refused; the hand-made line is still there.
	removed, err := keys.Remove(e.ID)
	if err != nil || len(removed) != 1 || removed[0].ListenPort != tport {
		t.Fatalf("remove = %+v, %v", removed, err)
	}
	pids, err := keys.EndSessions(removed)
	if err != nil || len(pids) != 1 {
		t.Fatalf("end sessions = %v, %v", pids, err)
	}
	checkEnded(t, tun, "file")
	checkLoginRefused(t, d, vma.PrivatePath)
	if got, _ := os.ReadFile(path); string(got) != handLine {
		t.Fatalf("after revocation:\n%s\nwant only\n%s", got, handLine)
	}
	if got, _ := os.ReadFile(path + ".bak"); string(got) != handLine+wantLine+"\n" {
		t.Fatalf(".bak:\n%s", got)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// osshApprove runs one VMA through enroll, verify and approve on svc.
func osshApprove(t *testing.T, svc *enroll.Service, name string) (*enroll.Enrollment, *sshkey.KeyPair) {
	t.Helper()
	kp := osshKey(t, name)
	return omatest.EnrollApproved(t, svc, omatest.VMA{Name: name, Key: kp.Private}), kp
}

// TestOpenSSHAuthorizedKeysCommand: sshd asks `oma-server authorized-keys`
// (the built binary, reading the SQLite database) at every login.
func TestOpenSSHAuthorizedKeysCommand(t *testing.T) {
	sshdPath, u := osshPrereqs(t)
	bin := osshBinary(t)
	osshResetKeys(t, u) // no file: the keys must come from the command
	nbd, other, vmaAPI := osshEcho(t, "nbd:"), osshEcho(t, "other:"), osshEcho(t, "vma:")
	ctx := context.Background()

	dataDir := t.TempDir()
	db := omatest.Store(t, "sqlite", filepath.Join(dataDir, "oma.db"))
	tport := testbin.FreePort(t)
	svc := enroll.New(db, enroll.Config{PortMin: tport, PortMax: tport}, bytes.Repeat([]byte{5}, 32), nil)
	e, vma := osshApprove(t, svc, "vma-cmd")
	if *e.TunnelPort != tport {
		t.Fatalf("tunnel port %d, want %d", *e.TunnelPort, tport)
	}

	// What sshd will get: the line for the tunnel user, nothing for others,
	// only the matching key with %t %k; stdout carries nothing else.
	want := fmt.Sprintf(`restrict,port-forwarding,command="/bin/false",permitopen="%s",permitlisten="127.0.0.1:%d" %s vma-enroll:%s:vma-cmd`+"\n",
		nbd, tport, sshkey.AuthorizedKey(vma.Public, ""), e.ID)
	ak := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"authorized-keys", "--data-dir", dataDir, "--tunnel-user", osshUser, "--nbd-target", nbd}, args...)...)
		cmd.Env = testbin.Env()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("authorized-keys %v: %v\n%s", args, err, stderr.String())
		}
		return string(out)
	}
	blob := strings.Fields(sshkey.AuthorizedKey(vma.Public, ""))[1]
	other1 := osshKey(t, "stranger")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{osshUser}, want},
		{[]string{osshUser, "ssh-ed25519", blob}, want},
		{[]string{osshUser, "ssh-ed25519", strings.Fields(sshkey.AuthorizedKey(other1.Public, ""))[1]}, ""},
		{[]string{osshUser, "ssh-rsa", "AAAAB3NzaC1yc2EAAAADAQABAAABAQ"}, ""},
		{[]string{"root"}, ""},
		{[]string{"root", "ssh-ed25519", blob}, ""},
	} {
		if got := ak(c.args...); got != c.want {
			t.Errorf("authorized-keys %v =\n%q\nwant\n%q", c.args, got, c.want)
		}
	}

	match := osshSSHDConfig(t, bin, "--keys-from", "command", "--data-dir", dataDir, "--tunnel-user", osshUser,
		"--nbd-target", nbd, "--command-user", "root", "--oma-server-path", bin)
	wantCmd := "\tAuthorizedKeysCommand " + bin + " authorized-keys --data-dir " + dataDir + " --tunnel-user " + osshUser + " --nbd-target " + nbd + " %u %t %k\n"
	if !strings.Contains(match, wantCmd) || !strings.Contains(match, "\tAuthorizedKeysFile none\n") {
		t.Fatalf("the block lacks\n%s:\n%s", wantCmd, match)
	}
	d := osshStartSSHD(t, sshdPath, match)
	env := osshVMAEnv{d: d, key: vma.PrivatePath, nbd: nbd, other: other, vmaAPI: vmaAPI, tunnelPort: tport}
	tun := checkRestrictedTunnel(t, env)

	// Revoked in the database: refused at the next login, no file involved.
	if _, err := svc.Revoke(ctx, e.ID, "test", enroll.Meta{Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	checkLoginRefused(t, d, vma.PrivatePath)
	if got := ak(osshUser); got != "" {
		t.Fatalf("after revocation authorized-keys printed %q", got)
	}
	// sshd alone does not cut the live session (it never re-checks keys):
	// that is serve's job (TestOpenSSHServe). Here it is still up.
	select {
	case err := <-tun.done:
		t.Logf("the live tunnel ended on its own: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestOpenSSHServe runs `oma-server serve --tunnel-mode openssh` with a real
// sshd: the start-up sync, the approve hook (the VMA gets in with exactly
// its forwards), the revoke hook (its live tunnel is cut, it cannot log in),
// and the tunnel object VMAs are given.
func TestOpenSSHServe(t *testing.T) {
	sshdPath, u := osshPrereqs(t)
	bin := osshBinary(t)
	path := osshResetKeys(t, u)
	nbd, other, vmaAPI := osshEcho(t, "nbd:"), osshEcho(t, "other:"), osshEcho(t, "vma:")

	// Before start: a hand-made line and a stale line of ours (an
	// enrollment the database does not know) that the start-up sync removes.
	hand := osshKey(t, "hand")
	handLine := sshkey.AuthorizedKey(hand.Public, "admin@jump") + "\n"
	stale := osshKey(t, "stale")
	stalePort := 9999
	staleLine, err := sshdkeys.AuthorizedKeyLine(&enroll.Enrollment{ID: "0b9d3c4e-0000-4000-8000-00000000dead", VMAName: "gone",
		VMAPublicKey: sshkey.AuthorizedKey(stale.Public, ""), TunnelPort: &stalePort}, nbd)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(path), 0o700)
	os.Chown(filepath.Dir(path), mustAtoi(t, u.Uid), mustAtoi(t, u.Gid))
	if err := os.WriteFile(path, []byte(handLine+staleLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	match := osshSSHDConfig(t, bin, "--keys-from", "file", "--tunnel-user", osshUser, "--nbd-target", nbd)
	d := osshStartSSHD(t, sshdPath, match)

	dataDir := t.TempDir()
	tport := testbin.FreePort(t)
	admin, public := testbin.FreePort(t), testbin.FreePort(t)
	logs := &testbin.Buffer{}
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir,
		"--admin-listen", fmt.Sprintf("127.0.0.1:%d", admin), "--public-listen", fmt.Sprintf("127.0.0.1:%d", public),
		"--public-host", "127.0.0.1", "--tunnel-mode", "openssh", "--tunnel-user", osshUser,
		"--ssh-host-key", d.hostKeyPub, "--ssh-port", strconv.Itoa(d.port), "--nbd-target", nbd,
		"--tunnel-port-range", fmt.Sprintf("%d-%d", tport, tport),
		"--authorized-keys-file", "~"+osshUser+"/.ssh/authorized_keys")
	cmd.Env = testbin.Env()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("oma-server log:\n%s", logs.String())
		}
	})
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", admin)
	pubURL := fmt.Sprintf("https://127.0.0.1:%d", public)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := testbin.WaitHealthy(adminURL+"/health", "", exited); err != nil {
		t.Fatalf("oma-server did not come up: %v\n%s", err, logs.String())
	}
	// The start-up sync removed the stale line and kept the hand-made one.
	if got, _ := os.ReadFile(path); string(got) != handLine {
		t.Fatalf("after the start-up sync:\n%s\nwant\n%s", got, handLine)
	}
	tokB, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokB))
	call := func(method, url, bearer string, in, out any) int {
		t.Helper()
		var body io.Reader
		if in != nil {
			b, _ := json.Marshal(in)
			body = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, url, body)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil && res.StatusCode < 300 {
				t.Fatalf("%s %s: %v: %s", method, url, err, b)
			}
		}
		return res.StatusCode
	}

	// Enroll and approve a VMA through the API.
	vma := osshKey(t, "vma-serve")
	var pc api.PairingCodeResponse
	if st := call("POST", adminURL+api.PathPairingCode, token, map[string]any{}, &pc); st != 201 {
		t.Fatalf("pairing code: %d", st)
	}
	var er api.EnrollResponse
	if st := call("POST", pubURL+api.PathEnroll, "", api.EnrollRequest{PairingCode: pc.PairingCode,
		VMAPublicKey: sshkey.AuthorizedKey(vma.Public, ""), VMAName: "vma-serve", VMAVersion: "1.0"}, &er); st != 201 {
		t.Fatalf("enroll: %d", st)
	}
	ch, _ := base64.StdEncoding.DecodeString(er.Challenge)
	var vr api.VerifyResponse
	if st := call("POST", pubURL+api.PathVerify, "", api.VerifyRequest{EnrollmentID: er.EnrollmentID,
		Signature: base64.StdEncoding.EncodeToString(enroll.SignChallenge(vma.Private, er.EnrollmentID, ch))}, &vr); st != 200 {
		t.Fatalf("verify: %d", st)
	}
	if st := call("POST", adminURL+api.PathApprove+er.EnrollmentID, token, map[string]any{}, nil); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	// The hook wrote the line (the response came after the hook ran).
	wantLine := fmt.Sprintf(`restrict,port-forwarding,command="/bin/false",permitopen="%s",permitlisten="127.0.0.1:%d" %s vma-enroll:%s:vma-serve`,
		nbd, tport, sshkey.AuthorizedKey(vma.Public, ""), er.EnrollmentID)
	if got, _ := os.ReadFile(path); string(got) != handLine+wantLine+"\n" {
		t.Fatalf("after approval:\n%s\nwant\n%s%s", got, handLine, wantLine)
	}
	fi, _ := os.Stat(path)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || strconv.Itoa(int(st.Gid)) != u.Gid || fi.Mode().Perm() != 0o640 {
		t.Fatalf("authorized_keys owner %d:%d mode %v, want root, group %s and 0640", st.Uid, st.Gid, fi.Mode().Perm(), u.Gid)
	}
	// The VMA is told sshd's port, user and host key.
	var res api.ResultResponse
	if st := call("GET", pubURL+api.PathResult+"?enrollment_id="+er.EnrollmentID, vr.PollToken, nil, &res); st != 200 || res.Tunnel == nil {
		t.Fatalf("result: %d %+v", st, res)
	}
	hostPub, _ := os.ReadFile(d.hostKeyPub)
	if res.Tunnel.Port != d.port || res.Tunnel.User != osshUser || res.Tunnel.HostKey != strings.TrimSpace(string(hostPub)) ||
		len(res.Tunnel.RemoteForwards) != 1 || res.Tunnel.RemoteForwards[0].Listen != fmt.Sprintf("127.0.0.1:%d", tport) ||
		len(res.Tunnel.LocalForwards) != 1 || res.Tunnel.LocalForwards[0].Target != nbd {
		t.Fatalf("tunnel object = %+v, want sshd port %d, user %s, its host key, -R 127.0.0.1:%d, -L to %s", *res.Tunnel, d.port, osshUser, tport, nbd)
	}

	env := osshVMAEnv{d: d, key: vma.PrivatePath, nbd: nbd, other: other, vmaAPI: vmaAPI, tunnelPort: tport}
	tun := checkRestrictedTunnel(t, env)

	// Revoke through the API: the hook removes the line and cuts the tunnel.
	if st := call("DELETE", adminURL+api.PathRevoke+er.EnrollmentID, token, map[string]any{"reason": "test"}, nil); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	checkEnded(t, tun, "serve")
	checkLoginRefused(t, d, vma.PrivatePath)
	if got, _ := os.ReadFile(path); string(got) != handLine {
		t.Fatalf("after revocation:\n%s\nwant\n%s", got, handLine)
	}
	if !strings.Contains(logs.String(), "authorized_keys: de-authorized") {
		t.Errorf("no de-authorization in the log:\n%s", logs.String())
	}
}

// osshShellUser is a tunnel user with a real login shell (/bin/sh): the
// worst case an admin can set up, where only the key line stands between a
// tunnel key and a shell.
func osshShellUser(t *testing.T) *user.User {
	t.Helper()
	const name = "omatestsh"
	osshUserOnce.Lock()
	defer osshUserOnce.Unlock()
	if u, err := user.Lookup(name); err == nil {
		return u
	}
	if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	if out, err := exec.Command("usermod", "-p", "*", name).CombinedOutput(); err != nil {
		t.Fatalf("usermod -p '*' %s: %v\n%s", name, err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Finding 4 of issue 13: the line the manager writes must refuse a
// command, a shell, a subsystem and a PTY on its own, against the real
// sshd with no Match block of ours (only AuthorizedKeysFile), for a tunnel
// user that has a real shell. The forward still works.
func TestOpenSSHKeyLineAloneRefusesSessions(t *testing.T) {
	sshdPath, _ := osshPrereqs(t)
	u := osshShellUser(t)
	path := osshResetKeys(t, u)
	nbd, vmaAPI := osshEcho(t, "nbd:"), osshEcho(t, "vma:")
	keys, err := sshdkeys.NewAuthorizedKeysFile(sshdkeys.AuthorizedKeysConfig{Path: path, NBDTarget: nbd, Owner: u})
	if err != nil {
		t.Fatal(err)
	}
	vma := osshKey(t, "vma-alone")
	tport := testbin.FreePort(t)
	e := enroll.Enrollment{ID: "0b9d3c4e-2222-4222-8333-444455556666", VMAName: "vma-alone", Status: enroll.StatusApproved,
		VMAPublicKey: sshkey.AuthorizedKey(vma.Public, ""), TunnelPort: &tport}
	if _, err := keys.Add(&e); err != nil {
		t.Fatal(err)
	}
	d := osshStartSSHDFor(t, sshdPath, u.Username, "Match User "+u.Username+"\n\tAuthorizedKeysFile "+path+"\n")

	// The key logs in and its forwards work: the refusals below are the
	// line's, not a failed login.
	lNBD := testbin.FreePort(t)
	tun := d.start(t, vma.PrivatePath, "-L", fmt.Sprintf("127.0.0.1:%d:%s", lNBD, nbd),
		"-R", fmt.Sprintf("127.0.0.1:%d:%s", tport, vmaAPI))
	tun.waitFor(t, "the NBD forward", func() bool {
		got, _ := osshRoundTrip(fmt.Sprintf("127.0.0.1:%d", lNBD), "x")
		return got == "nbd:x"
	})

	run := func(stdin string, extra []string, command ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ssh", append(d.sshArgs(vma.PrivatePath, extra...), command...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("ssh %v %v still running after 20s", extra, command)
		}
		return string(out), err
	}
	// "PWN''ED" prints PWNED only when a shell runs it.
	if out, err := run("", nil, "echo PWN''ED; id"); err == nil || strings.Contains(out, "PWNED") || strings.Contains(out, "uid=") {
		t.Errorf("a command ran with only the key line in place: %v\n%s", err, out)
	}
	if out, err := run("echo PWN''ED; id\n", []string{"-T"}); err == nil || strings.Contains(out, "PWNED") || strings.Contains(out, "uid=") {
		t.Errorf("a shell ran with only the key line in place: %v\n%s", err, out)
	}
	if out, err := run("echo PWN''ED\nexit\n", []string{"-tt"}); err == nil || strings.Contains(out, "PWNED") || !strings.Contains(out, "PTY allocation request failed") {
		t.Errorf("a PTY shell was not refused with only the key line in place: %v\n%s", err, out)
	}
	// SSH_FXP_INIT (version 3): an sftp server answers SSH_FXP_VERSION.
	init := string([]byte{0, 0, 0, 5, 1, 0, 0, 0, 3})
	if out, err := run(init, []string{"-s"}, "sftp"); err == nil || (len(out) >= 5 && out[4] == 2) {
		t.Errorf("the sftp subsystem answered with only the key line in place: %v\n%q", err, out)
	}
	// The tunnel is still up.
	if got, _ := osshRoundTrip(fmt.Sprintf("127.0.0.1:%d", lNBD), "y"); got != "nbd:y" {
		t.Errorf("NBD forward after the refusals = %q", got)
	}
}
