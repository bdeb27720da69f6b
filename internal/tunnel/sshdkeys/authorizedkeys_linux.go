package sshdkeys

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// endListenerSessions sends SIGTERM to every sshd process of uid that holds
// a listening TCP socket, owned by uid, on one of ports.
func endListenerSessions(uid int, ports map[int]bool) ([]int, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := listeningInodes(f, uid, ports, inodes); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if len(inodes) == 0 {
		return nil, nil
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var killed []int
	var errs []error
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || !isSSHDOf(pid, uid) {
			continue
		}
		if !holdsSocket(pid, inodes) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			if !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("end sshd session %d: %w", pid, err))
			}
			continue
		}
		killed = append(killed, pid)
	}
	return killed, errors.Join(errs...)
}

// listeningInodes adds the socket inodes of LISTEN entries of a
// /proc/net/tcp* table owned by uid on one of ports.
func listeningInodes(table string, uid int, ports map[int]bool, out map[string]bool) error {
	f, err := os.Open(table)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
		fl := strings.Fields(sc.Text())
		if len(fl) < 10 || fl[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(fl[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || !ports[int(port)] {
			continue
		}
		if u, err := strconv.Atoi(fl[7]); err != nil || u != uid {
			continue
		}
		out[fl[9]] = true
	}
	return sc.Err()
}

// isSSHDOf reports whether pid is an sshd (or sshd-session) process whose
// real uid is uid.
func isSSHDOf(pid, uid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return false
	}
	switch strings.TrimSpace(string(comm)) {
	case "sshd", "sshd-session":
	default:
		return false
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
			f := strings.Fields(rest)
			return len(f) > 0 && f[0] == strconv.Itoa(uid)
		}
	}
	return false
}

// holdsSocket reports whether pid has a descriptor on one of the inodes.
func holdsSocket(pid int, inodes map[string]bool) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(target, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
			return true
		}
	}
	return false
}
