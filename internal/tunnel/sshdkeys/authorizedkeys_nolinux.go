//go:build !linux

package sshdkeys

import "errors"

func endListenerSessions(uid int, ports map[int]bool) ([]int, error) {
	return nil, errors.New("ending live sshd sessions needs Linux (/proc); the removed key cannot log in again, but a live session stays until it disconnects")
}
