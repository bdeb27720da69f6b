//go:build unix

package vmaenroll

import (
	"errors"
	"os"
	"syscall"
)

// lockKeys takes the config directory's key lock (id_ed25519.lock, flock):
// one rotation at a time, and no recovery while a rotation runs. It
// reports false, nil when another process holds it.
func lockKeys(dir string) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(keyLockPath(dir), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return func() { f.Close() }, true, nil
}
