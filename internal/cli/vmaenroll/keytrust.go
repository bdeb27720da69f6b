package vmaenroll

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// checkKeyTrust refuses a config directory and an existing private key that
// this VMA cannot call its own (issue 13, finding 7): a key someone else
// could have placed there (owned by another user), one others could have
// copied (readable by group or others: OpenSSH refuses such a key too), or
// a directory others may write to (they could swap the key or the tunnel's
// files). Each refusal says what to do. A missing directory or key is fine:
// vma-enroll creates them with safe modes.
func checkKeyTrust(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("config directory %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("config directory %s is not a directory: pass another --config-dir", dir)
	case fi.Mode().Perm()&0o002 != 0:
		return fmt.Errorf("config directory %s is writable by others (mode %04o): anyone on this VMA could replace its SSH key or tunnel settings; restrict it (chmod 700 %s) or pass another --config-dir", dir, fi.Mode().Perm(), dir)
	}
	key := filepath.Join(dir, "id_ed25519")
	ki, err := os.Lstat(key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("SSH key %s: %w", key, err)
	case !ki.Mode().IsRegular():
		return fmt.Errorf("SSH key %s is not a regular file (a symbolic link or a device): vma-enroll uses only a key file of its own; remove it (rm %s) and run again to make a new key", key, key)
	}
	if uid, ok := fileOwner(ki); ok && uid != os.Geteuid() {
		return fmt.Errorf("SSH key %s belongs to uid %d, not to the user running vma-enroll (uid %d): a key someone else placed there is not this VMA's own; remove it (rm %s) and run again to make a new key, or run vma-enroll as its owner", key, uid, os.Geteuid(), key)
	}
	if ki.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("SSH key %s is readable by others (mode %04o): whoever copied it could pose as this VMA; if it may have leaked, remove it (rm %s) and enroll again to make a new key, else restrict it (chmod 600 %s)", key, ki.Mode().Perm(), key, key)
	}
	return nil
}

// keyFingerprint is the SHA256 fingerprint of kp's public key.
func keyFingerprint(kp *sshkey.KeyPair) string {
	return sshkey.Fingerprint(ed25519.PublicKey(kp.Public))
}
