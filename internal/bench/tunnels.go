package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/contract"
)

// pss reads a process's proportional set size in bytes.
func pss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "Pss:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no Pss in smaps_rollup of %d", pid)
}

// idleTunnels opens n idle tunnels (each with its reverse forward) to the
// embedded endpoint and returns the server's PSS growth per tunnel. Then it
// revokes up to revokes of them, one at a time, through revoker (another
// instance on the same database, or s itself), and returns for each the
// time from the revoke call to the tunnel's end as its client sees it.
func idleTunnels(s *server, n, revokes int, revoker *server) (perTunnel int64, dropped durations, err error) {
	codes, err := s.codes(n)
	if err != nil {
		return 0, nil, err
	}
	ks := keys(n)
	c := &http2Client{Client: keepAliveClient(16)}
	type vma struct {
		id   string
		key  vmaKey
		port int
	}
	vmas := make([]vma, n)
	_, _, err = parallel(8, n, func(i int) error {
		id, _, err := s.enrollOnce(c, codes[i], ks[i], fmt.Sprintf("idle-%d", i))
		if err != nil {
			return err
		}
		var e api.Enrollment
		if err := s.admin_("POST", api.PathApprove+id, nil, &e); err != nil {
			return err
		}
		vmas[i] = vma{id: id, key: ks[i], port: *e.TunnelPort}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	runtimeSettle()
	before, err := pss(s.cmd.Process.Pid)
	if err != nil {
		return 0, nil, err
	}
	clients := make([]*ssh.Client, 0, n)
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for _, v := range vmas {
		signer, err := ssh.NewSignerFromKey(v.key.priv)
		if err != nil {
			return 0, nil, err
		}
		cl, err := ssh.Dial("tcp", s.public, &ssh.ClientConfig{
			User: contract.TunnelUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second,
		})
		if err != nil {
			return 0, nil, fmt.Errorf("tunnel %d: %w", len(clients), err)
		}
		clients = append(clients, cl)
		if _, err := cl.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(v.port))); err != nil {
			return 0, nil, fmt.Errorf("reverse forward %d: %w", v.port, err)
		}
	}
	runtimeSettle()
	after, err := pss(s.cmd.Process.Pid)
	if err != nil {
		return 0, nil, err
	}
	perTunnel = (after - before) / int64(n)
	for i := range min(revokes, n) {
		d, err := revokeAndWait(revoker, vmas[i].id, clients[i])
		if err != nil {
			return 0, nil, err
		}
		dropped = append(dropped, d)
	}
	return perTunnel, dropped, nil
}

// revokeAndWait revokes id and returns how long its live tunnel cl
// lasted after the revoke call began.
func revokeAndWait(s *server, id string, cl *ssh.Client) (time.Duration, error) {
	closed := make(chan struct{})
	go func() { cl.Wait(); close(closed) }()
	start := time.Now()
	if err := s.admin_("DELETE", api.PathRevoke+id, nil, nil); err != nil {
		return 0, fmt.Errorf("revoke %s: %w", id, err)
	}
	select {
	case <-closed:
		return time.Since(start), nil
	case <-time.After(30 * time.Second):
		return 0, fmt.Errorf("the tunnel of %s was still up 30s after its revocation", id)
	}
}

// runtimeSettle lets the server's goroutines and the GC quiesce.
func runtimeSettle() { time.Sleep(2 * time.Second) }

// enrollApproved enrolls a VMA called name with the real vma-enroll into
// cfgDir, approves it once pending, and returns its enrollment id after
// vma-enroll has written its tunnel configuration.
func enrollApproved(ctx context.Context, bins Bins, s *server, name, cfgDir string) (string, error) {
	codes, err := s.codes(1)
	if err != nil {
		return "", err
	}
	enrollCmd := exec.CommandContext(ctx, bins.path("vma-enroll"), "--oma", s.public, "--code", codes[0],
		"--fingerprint", s.fingerprint, "--config-dir", cfgDir, "--name", name, "-o", "json")
	enrollCmd.Env = cleanEnv()
	if err := enrollCmd.Start(); err != nil {
		return "", err
	}
	id, err := s.waitPending(name, 30*time.Second)
	if err != nil {
		enrollCmd.Process.Kill()
		return "", err
	}
	if err := s.admin_("POST", api.PathApprove+id, nil, nil); err != nil {
		return "", err
	}
	if err := enrollCmd.Wait(); err != nil {
		return "", fmt.Errorf("vma-enroll: %w", err)
	}
	return id, nil
}

// approvalToTunnel enrolls VMAs with the real vma-enroll, approves them,
// runs `vma-enroll tunnel` once each exits, and returns the server-side
// time from approval to the first tunnel connection (from the audit).
func approvalToTunnel(ctx context.Context, bins Bins, s *server, n int, dir string) (durations, error) {
	var out durations
	for i := range n {
		cfgDir := filepath.Join(dir, fmt.Sprintf("vma-%d", i))
		id, err := enrollApproved(ctx, bins, s, fmt.Sprintf("tunnel-%d", i), cfgDir)
		if err != nil {
			return nil, err
		}
		tun := exec.CommandContext(ctx, bins.path("vma-enroll"), "tunnel", "--config-dir", cfgDir)
		tun.Env = cleanEnv()
		if err := tun.Start(); err != nil {
			return nil, err
		}
		d, err := s.waitConnected(id, 30*time.Second)
		tun.Process.Signal(os.Interrupt)
		tun.Wait()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (s *server) waitPending(name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var l api.EnrollmentList
		if err := s.admin_("GET", api.PathPending, nil, &l); err == nil {
			for _, e := range l.Enrollments {
				if e.VMAName == name {
					return e.ID, nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("%s did not show up as pending", name)
}

// waitConnected waits for the first connection event of id and returns
// its since_approval_seconds.
func (s *server) waitConnected(id string, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var l api.AuditList
		if err := s.admin_("GET", api.PathAudit+"?event_type=connection&enrollment_id="+id, nil, &l); err == nil {
			for _, ev := range l.Events {
				if v, ok := ev.EventDetails["since_approval_seconds"].(float64); ok {
					return time.Duration(v * float64(time.Second)), nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("no tunnel connection of %s within %s", id, timeout)
}
