//go:build !unix

package sshdkeys

import (
	"errors"
	"io/fs"
	"os"
)

func lockFile(path string, uid, gid int) (func(), error) {
	return nil, errors.New("the openssh tunnel mode needs a Unix system (flock)")
}

func ownedBy(fi fs.FileInfo, uid, gid int) bool { return true }

func openNoFollow(path string, dir bool) (*os.File, error) { return os.Open(path) }

func isLinkOrNotDir(err error) bool { return false }
