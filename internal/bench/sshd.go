package bench

// The reference of row 4: OpenSSH sshd with M idle tunnels, set up as the
// openssh tunnel mode sets it up (the Match block `oma-server sshd-config`
// prints, an authorized_keys file written by the real manager with one
// restricted line per approved VMA), measured in the same run as the
// embedded endpoint.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/sshdkeys"
)

// sshdUser is the tunnel user of the measurement (the one the openssh
// mode tests use).
const sshdUser = "omatest"

// sshdResult is the sshd reference of row 4.
type sshdResult struct {
	perTunnel int64  // PSS growth per tunnel, bytes
	version   string // e.g. "OpenSSH_9.2"
	skipped   string // why it was not measured; empty when it was
}

// sshdPath finds sshd, or says why it cannot run here.
func sshdPath() (string, string) {
	if os.Geteuid() != 0 {
		return "", "the harness does not run as root (sshd has to switch to the tunnel user)"
	}
	p := "/usr/sbin/sshd"
	if _, err := os.Stat(p); err != nil {
		if p, err = exec.LookPath("sshd"); err != nil {
			return "", "sshd is not installed (apt-get install openssh-server)"
		}
	}
	return p, ""
}

// privateSSHD is a private sshd set up as the openssh tunnel mode sets it
// up: the Match block `oma-server sshd-config` prints and an authorized_keys
// file written by the real manager with one restricted line per approved
// VMA.
type privateSSHD struct {
	addr     string
	hostKey  ssh.PublicKey
	listener int // pid of the listening sshd
	version  string
	stop     func(failed bool)
}

// startPrivateSSHD starts it with approved's keys and ports, allowing
// nbdTarget as the local forward's target. skipped says why sshd cannot
// run here (then s is nil and err nil). stop ends everything it started
// and removes what it created.
func startPrivateSSHD(ctx context.Context, bins Bins, dir string, approved []enroll.Enrollment, nbdTarget string, logf func(string, ...any)) (s *privateSSHD, skipped string, err error) {
	path, why := sshdPath()
	if why != "" {
		return nil, why, nil
	}
	version := sshdVersion(path)
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	// sshd refuses to start without its privilege separation directory,
	// which the package creates at boot only.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	u, created, err := sshdTunnelUser()
	if err != nil {
		return nil, "", err
	}
	if created {
		cleanups = append(cleanups, func() {
			if out, err := exec.Command("userdel", "--remove", sshdUser).CombinedOutput(); err != nil {
				logf("sshd: userdel %s: %v %s", sshdUser, err, bytes.TrimSpace(out))
			}
		})
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	// The authorized_keys file lives in a directory of its own in the
	// tunnel user's home (StrictModes accepts it there, and the tests' own
	// ~/.ssh/authorized_keys is left alone).
	if u.HomeDir == "" {
		return nil, "", fmt.Errorf("tunnel user %s has no home directory", sshdUser)
	}
	keyDir, err := os.MkdirTemp(u.HomeDir, ".oma-bench-")
	if err != nil {
		return nil, "", err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(keyDir) })
	if err := os.Chown(keyDir, uid, gid); err != nil {
		return nil, "", err
	}
	akPath := filepath.Join(keyDir, "authorized_keys")
	ak, err := sshdkeys.NewAuthorizedKeysFile(sshdkeys.AuthorizedKeysConfig{Path: akPath, NBDTarget: nbdTarget, Owner: u})
	if err != nil {
		return nil, "", err
	}
	if sr, err := ak.Sync(approved); err != nil {
		return nil, "", err
	} else if len(sr.Added) != len(approved) {
		return nil, "", fmt.Errorf("authorized_keys: %d lines written, want %d (skipped %v)", len(sr.Added), len(approved), sr.Skipped)
	}

	// The configuration: a minimal base and the Match block of the openssh
	// mode, as `oma-server sshd-config --keys-from file` prints it.
	gen := exec.CommandContext(ctx, bins.path("oma-server"), "sshd-config", "--keys-from", "file", "--tunnel-user", sshdUser,
		"--nbd-target", nbdTarget, "--authorized-keys-file", akPath)
	gen.Env = cleanEnv()
	var genErr bytes.Buffer
	gen.Stderr = &genErr
	match, err := gen.Output()
	if err != nil {
		return nil, "", fmt.Errorf("oma-server sshd-config: %v: %s", err, genErr.Bytes())
	}
	if !bytes.Contains(match, []byte("\tAuthorizedKeysFile "+akPath+"\n")) {
		return nil, "", fmt.Errorf("the sshd-config block does not point sshd at %s:\n%s", akPath, match)
	}
	hk, err := sshkey.LoadOrGenerateFile(filepath.Join(dir, "ssh_host_ed25519_key"), "oma-bench-sshd")
	if err != nil {
		return nil, "", err
	}
	hostKey, err := ssh.NewPublicKey(hk.Public)
	if err != nil {
		return nil, "", err
	}
	cfg := filepath.Join(dir, "sshd_config")
	base := strings.Join([]string{
		"# private sshd of the oma-enroll bench (rows 4 and 8)",
		"ListenAddress 127.0.0.1",
		"PidFile none",
		"UsePAM no",
		"StrictModes yes",
		"LogLevel INFO",
		"AllowUsers " + sshdUser,
		"AuthorizedKeysFile none",
		"PasswordAuthentication no",
		"",
	}, "\n")
	if err := os.WriteFile(cfg, append([]byte(base), match...), 0o600); err != nil {
		return nil, "", err
	}
	port := freePort()
	args := []string{"-f", cfg, "-p", strconv.Itoa(port), "-h", hk.PrivatePath}
	if out, err := exec.CommandContext(ctx, path, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("sshd -t rejects the configuration: %v: %s", err, bytes.TrimSpace(out))
	}

	log := &capBuf{max: 64 << 10}
	cmd := exec.Command(path, append([]string{"-D", "-e"}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start sshd: %w", err)
	}
	listener := cmd.Process.Pid
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopSSHD := func(failed bool) {
		// The tunnels are closed by now: their sessions end with them,
		// reaped by the listener while it still runs. Then the listener,
		// and whatever per-connection process is left.
		for deadline := time.Now().Add(5 * time.Second); len(procTree(listener)) > 1 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		left := procTree(listener)[1:]
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		endSSHDs(left, logf)
		if failed {
			logf("sshd log:\n%s", log.String())
		}
		cleanup()
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			stopSSHD(true)
			return nil, "", fmt.Errorf("sshd exited: %s", firstLine(log.String()))
		default:
		}
		if time.Now().After(deadline) {
			stopSSHD(true)
			return nil, "", fmt.Errorf("sshd does not listen on %s", addr)
		}
	}
	cleanups = nil // stopSSHD runs them now
	return &privateSSHD{addr: addr, hostKey: hostKey, listener: listener, version: version, stop: func(failed bool) {
		stopSSHD(failed)
	}}, "", nil
}

// sshdIdleTunnels starts a private sshd, opens m idle tunnels to it (each
// with its reverse forward on its own permitlisten port) and returns the
// PSS growth of sshd (the listener and every per-connection process) per
// tunnel. Everything it starts or creates is gone when it returns.
func sshdIdleTunnels(ctx context.Context, bins Bins, m int, dir string, logf func(string, ...any)) (res sshdResult, err error) {
	if m < 1 {
		return sshdResult{skipped: "no tunnels asked for (SSHDTunnels is 0)"}, nil
	}
	const nbdTarget = contract.NBDTarget
	ports, err := freePorts(m)
	if err != nil {
		return res, err
	}
	ks := keys(m)
	approved := make([]enroll.Enrollment, m)
	for i := range approved {
		approved[i] = enroll.Enrollment{ID: randomUUID(), VMAName: fmt.Sprintf("sshd-%d", i), Status: enroll.StatusApproved,
			VMAPublicKey: ks[i].line, TunnelPort: &ports[i]}
	}
	sd, skipped, err := startPrivateSSHD(ctx, bins, dir, approved, nbdTarget, logf)
	if err != nil || skipped != "" {
		return sshdResult{skipped: skipped}, err
	}
	res.version = sd.version
	var clients []*ssh.Client
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
		sd.stop(err != nil)
	}()
	listener, addr := sd.listener, sd.addr

	runtimeSettle()
	before, err := treePSS(listener)
	if err != nil {
		return res, err
	}
	for i := range m {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		signer, err := ssh.NewSignerFromKey(ks[i].priv)
		if err != nil {
			return res, err
		}
		cl, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
			User: sshdUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.FixedHostKey(sd.hostKey), Timeout: 30 * time.Second,
		})
		if err != nil {
			return res, fmt.Errorf("sshd tunnel %d: %w", i, err)
		}
		clients = append(clients, cl)
		if _, err := cl.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i]))); err != nil {
			return res, fmt.Errorf("sshd reverse forward %d: %w", ports[i], err)
		}
	}
	runtimeSettle()
	after, err := treePSS(listener)
	if err != nil {
		return res, err
	}
	if n := len(procTree(listener)); n < m+1 {
		return res, fmt.Errorf("sshd has %d processes with %d tunnels up, want at least %d", n, m, m+1)
	}
	res.perTunnel = (after - before) / int64(m)
	return res, nil
}

// sshdVersion is the first word of `sshd -V` (e.g. "OpenSSH_9.2p1").
func sshdVersion(path string) string {
	out, _ := exec.Command(path, "-V").CombinedOutput()
	if v, _, _ := strings.Cut(firstLine(string(out)), ","); strings.HasPrefix(v, "OpenSSH") {
		return v
	}
	return "version unknown"
}

// sshdTunnelUser returns the tunnel user, creating it (home directory, no
// login shell) when missing, as the openssh mode tests do. A new account
// gets the password "*" instead of useradd's locked "!", which sshd with
// UsePAM no refuses; no password can match "*".
func sshdTunnelUser() (*user.User, bool, error) {
	if u, err := user.Lookup(sshdUser); err == nil {
		return u, false, nil
	}
	if out, err := exec.Command("useradd", "--create-home", "--shell", "/usr/sbin/nologin", sshdUser).CombinedOutput(); err != nil {
		return nil, false, fmt.Errorf("useradd %s: %v: %s", sshdUser, err, bytes.TrimSpace(out))
	}
	if out, err := exec.Command("usermod", "-p", "*", sshdUser).CombinedOutput(); err != nil {
		exec.Command("userdel", "--remove", sshdUser).Run()
		return nil, false, fmt.Errorf("usermod -p '*' %s: %v: %s", sshdUser, err, bytes.TrimSpace(out))
	}
	u, err := user.Lookup(sshdUser)
	return u, err == nil, err
}

// freePort is a free loopback TCP port.
func freePort() int {
	_, p, _ := net.SplitHostPort(freeAddr())
	n, _ := strconv.Atoi(p)
	return n
}

// freePorts returns n distinct free loopback ports (all held open at once
// while they are picked).
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	out := make([]int, n)
	for i := range out {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out[i] = l.Addr().(*net.TCPAddr).Port
	}
	return out, nil
}

// randomUUID is a version 4 UUID in the canonical lower-case form.
func randomUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// procStat is the parent and state of a process, from /proc/PID/stat.
func procStat(pid int) (ppid int, state byte, comm string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, "", err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return 0, 0, "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 2 {
		return 0, 0, "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], s[open+1 : end], err
}

// procTree is root followed by every process whose parent chain leads to
// it.
func procTree(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, _, err := procStat(pid); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// treePSS sums the PSS of root and its descendants. A descendant that ends
// while it is read counts nothing.
func treePSS(root int) (int64, error) {
	pids := procTree(root)
	total, err := pss(root)
	if err != nil {
		return 0, err
	}
	for _, pid := range pids[1:] {
		if p, err := pss(pid); err == nil {
			total += p
		}
	}
	return total, nil
}

// endSSHDs ends the per-connection sshd processes left after the listener
// (normally none: their connections are closed by then). Only pids that
// are still an sshd are signalled.
func endSSHDs(pids []int, logf func(string, ...any)) {
	alive := func(pid int) bool {
		_, state, comm, err := procStat(pid)
		return err == nil && state != 'Z' && strings.HasPrefix(comm, "sshd")
	}
	signal := func(sig syscall.Signal) (n int) {
		for _, pid := range pids {
			if alive(pid) {
				if p, err := os.FindProcess(pid); err == nil && p.Signal(sig) == nil {
					n++
				}
			}
		}
		return n
	}
	if signal(syscall.SIGTERM) == 0 {
		return
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		left := 0
		for _, pid := range pids {
			if alive(pid) {
				left++
			}
		}
		if left == 0 {
			return
		}
	}
	if n := signal(syscall.SIGKILL); n > 0 {
		logf("sshd: killed %d per-connection processes that outlived SIGTERM", n)
	}
}

// capBuf keeps the first max bytes written to it (sshd's log).
type capBuf struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (c *capBuf) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capBuf) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// oneLine makes an error fit a table cell.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
