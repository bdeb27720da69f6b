package sshdkeys

import (
	"errors"
	"fmt"
	"strconv"
)

// EndSessions ends the live sshd sessions of removed lines, as far as they
// can be found: sshd itself never re-reads authorized_keys for a connection
// that is already authenticated, so removing a line stops new logins only.
//
// How: a VMA tunnel always holds its reverse forward, so while it is up the
// tunnel user's sshd session process listens on 127.0.0.1:<tunnel_port>
// (the line's permitlisten port). EndSessions finds the listening socket of
// that port owned by the tunnel user (/proc/net/tcp, tcp6), the sshd (or,
// OpenSSH 9.8+, sshd-session) process of the tunnel user holding it
// (/proc/<pid>/fd), and sends it SIGTERM; sshd then closes that connection
// and only that one. It needs Linux and root (or the tunnel user's uid).
//
// Not covered, by design of sshd: a connection of the revoked key that
// holds no reverse forward (it can still reach the NBD target until it
// disconnects). ClientAliveInterval ends dead connections only, not live
// ones. It returns the pids it signalled.
func (a *AuthorizedKeysFile) EndSessions(removed []AuthorizedKeyEntry) ([]int, error) {
	ports := map[int]bool{}
	for _, e := range removed {
		if e.ListenPort > 0 {
			ports[e.ListenPort] = true
		}
	}
	if len(ports) == 0 {
		return nil, nil
	}
	if a.owner == nil {
		return nil, errors.New("authorized_keys: the tunnel user is unknown, cannot find its sessions")
	}
	uid, err := strconv.Atoi(a.owner.Uid)
	if err != nil {
		return nil, fmt.Errorf("authorized_keys: user %s has no numeric uid", a.owner.Username)
	}
	return endListenerSessions(uid, ports)
}
