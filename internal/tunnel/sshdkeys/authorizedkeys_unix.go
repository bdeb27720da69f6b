//go:build unix

package sshdkeys

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on path (created 600, owned by uid/gid
// when uid >= 0) and returns its release. flock excludes other open file
// descriptions too, so goroutines and processes wait for each other alike.
func lockFile(path string, uid, gid int) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, authorizedKeysFileMode)
	if err != nil {
		return nil, err
	}
	if uid >= 0 {
		if fi, err := f.Stat(); err == nil && !ownedBy(fi, uid, gid) {
			_ = f.Chown(uid, gid)
		}
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// ownedBy reports whether fi belongs to uid:gid (gid < 0: any group).
func ownedBy(fi fs.FileInfo, uid, gid int) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || (int(st.Uid) == uid && (gid < 0 || int(st.Gid) == gid))
}

// openNoFollow opens path read-only without following a symbolic link in
// its last element (and without blocking on a FIFO); dir asks for a
// directory.
func openNoFollow(path string, dir bool) (*os.File, error) {
	flag := os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if dir {
		flag |= syscall.O_DIRECTORY
	}
	return os.OpenFile(path, flag, 0)
}

// isLinkOrNotDir reports whether an open failed because the path is a
// symbolic link (ELOOP with O_NOFOLLOW) or not a directory.
func isLinkOrNotDir(err error) bool {
	return errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR)
}
