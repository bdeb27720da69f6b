//go:build !unix

package tunnel

import (
	"errors"
	"io/fs"
)

func lockFile(path string, uid, gid int) (func(), error) {
	return nil, errors.New("the openssh tunnel mode needs a Unix system (flock)")
}

func ownedBy(fi fs.FileInfo, uid, gid int) bool { return true }
