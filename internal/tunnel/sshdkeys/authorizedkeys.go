// Package sshdkeys is the OMA's side of the VMA tunnel in the openssh
// mode, linked by oma-server only: the system sshd is the tunnel endpoint,
// and this package keeps the tunnel user's authorized_keys file in step
// with the approved enrollments and ends the sshd sessions of revoked keys
// (authorizedkeys_sessions.go, the /proc scanner of authorizedkeys_linux.go).
package sshdkeys

// The authorized_keys manager of the openssh tunnel mode: the system sshd is
// the tunnel endpoint, and this file is where approved VMA keys go.
//
// Each approved enrollment owns exactly one line, recognised by the comment
// marker "vma-enroll:<enrollment id>:<vma name>":
//
//	restrict,port-forwarding,command="/bin/false",permitopen="127.0.0.1:10809",permitlisten="127.0.0.1:9081" ssh-ed25519 AAAA… vma-enroll:<id>:<name>
//
// `restrict` turns off everything (forwarding, PTY, agent, X11, user rc);
// `port-forwarding` turns TCP forwarding back on, and permitopen /
// permitlisten narrow it to the NBD target (-L) and the VMA's own reverse
// port (-R). `command="/bin/false"` replaces whatever a session asks for (a
// shell, a command, a subsystem) by a command that does nothing, so the line
// alone keeps a tunnel key from running anything, whatever the sshd_config
// says. Every other line of the file (keys the admin put there by hand,
// comments, blank lines) is kept byte for byte.
//
// Ownership: run as root (as it must to manage another user's file), the
// manager gives the file and its directory to root, with read access for
// the tunnel user's group only (0640, 0750): sshd reads the file with the
// tunnel user's rights, and the tunnel user cannot change its own
// restrictions. An existing ~/.ssh and file of the tunnel user are taken
// over at the next start (the start-up sync). Files are opened without
// following symbolic links, and their mode and owner are set on the open
// file, never by name.
//
// Every change: an exclusive flock on "<file>.lock" (so goroutines and
// several processes are safe), read the current file, edit only our lines,
// copy the previous content to "<file>.bak", write a temp file in the same
// directory, fsync, rename over the file, fsync the directory. sshd (and any
// reader) sees either the old or the new file, never a partial one.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/atomicfile"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// AuthorizedKeysMarker starts the comment of every line the manager writes;
// the enrollment id and the VMA name follow, separated by colons.
const AuthorizedKeysMarker = "vma-enroll:"

// File modes the manager enforces (sshd's StrictModes wants no group or
// other write access; we give none at all). As root, the file and the
// directory are root's and readable by the tunnel user's group
// (rootOwned*); otherwise they stay the writer's, private.
const (
	authorizedKeysDirMode  fs.FileMode = 0o700
	authorizedKeysFileMode fs.FileMode = 0o600
	rootOwnedDirMode       fs.FileMode = 0o750
	rootOwnedFileMode      fs.FileMode = 0o640
)

// ForcedCommand is the command every line forces for sessions: nothing
// runs, whatever the client asked for.
const ForcedCommand = "/bin/false"

// AuthorizedKeyLine is the restricted authorized_keys line of an approved
// enrollment: only a local forward to nbdTarget and a remote forward on
// 127.0.0.1:<tunnel_port> are allowed. The key is re-encoded from its parsed
// form, and the id, name and target are checked, so no stored value can
// inject options or a second line.
func AuthorizedKeyLine(e *enroll.Enrollment, nbdTarget string) (string, error) {
	if e == nil {
		return "", errors.New("authorized_keys: no enrollment")
	}
	id, err := enroll.NormalizeID(e.ID)
	if err != nil || id != e.ID {
		return "", fmt.Errorf("authorized_keys: enrollment id %q is not a canonical UUID", enroll.Printable(e.ID))
	}
	if err := enroll.ValidateName(e.VMAName); err != nil {
		return "", fmt.Errorf("authorized_keys: enrollment %s: %w", e.ID, err)
	}
	if e.TunnelPort == nil || *e.TunnelPort < 1 || *e.TunnelPort > 65535 {
		return "", fmt.Errorf("authorized_keys: enrollment %s has no tunnel port (is it approved?)", e.ID)
	}
	if err := checkPermitTarget(nbdTarget); err != nil {
		return "", err
	}
	_, canon, err := sshkey.ParseAuthorizedKey(e.VMAPublicKey)
	if err != nil {
		return "", fmt.Errorf("authorized_keys: enrollment %s: %w", e.ID, err)
	}
	return fmt.Sprintf(`restrict,port-forwarding,command="%s",permitopen="%s",permitlisten="127.0.0.1:%d" %s %s%s:%s`,
		ForcedCommand, nbdTarget, *e.TunnelPort, canon, AuthorizedKeysMarker, e.ID, e.VMAName), nil
}

// checkPermitTarget accepts HOST:PORT with a numeric port and a host made
// of characters that cannot end a quoted authorized_keys option.
func checkPermitTarget(target string) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("authorized_keys: NBD target %q is not HOST:PORT", target)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("authorized_keys: NBD target %q has no valid port", target)
	}
	if host == "" {
		return fmt.Errorf("authorized_keys: NBD target %q has no host", target)
	}
	for _, r := range host {
		ok := r == '.' || r == '-' || r == ':' || r == '_' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return fmt.Errorf("authorized_keys: NBD target %q: the host may hold only letters, digits, '.', '-', '_' and ':'", target)
		}
	}
	return nil
}

// AuthorizedKeyEntry is one line the manager wrote.
type AuthorizedKeyEntry struct {
	EnrollmentID string
	VMAName      string
	// Fingerprint is the SHA256 fingerprint of the line's key.
	Fingerprint string
	// ListenPort is the port of the line's permitlisten (the VMA's tunnel
	// port), 0 when the line has none.
	ListenPort int
	// Line is the line as it stands in the file (without the newline).
	Line string
}

// ParseAuthorizedKeyEntry reports whether line is one the manager wrote
// (a key line whose comment is "vma-enroll:<uuid>:<name>") and decodes it.
// Anything else, malformed lines included, is someone else's.
func ParseAuthorizedKeyEntry(line string) (AuthorizedKeyEntry, bool) {
	line = strings.TrimRight(line, "\r")
	if !strings.Contains(line, AuthorizedKeysMarker) {
		return AuthorizedKeyEntry{}, false
	}
	key, comment, opts, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || len(bytes.TrimSpace(rest)) > 0 {
		return AuthorizedKeyEntry{}, false
	}
	tail, ok := strings.CutPrefix(comment, AuthorizedKeysMarker)
	if !ok {
		return AuthorizedKeyEntry{}, false
	}
	id, name, ok := strings.Cut(tail, ":")
	if !ok {
		return AuthorizedKeyEntry{}, false
	}
	if n, err := enroll.NormalizeID(id); err != nil || n != id {
		return AuthorizedKeyEntry{}, false
	}
	e := AuthorizedKeyEntry{EnrollmentID: id, VMAName: name, Fingerprint: ssh.FingerprintSHA256(key), Line: line}
	for _, o := range opts {
		v, ok := strings.CutPrefix(o, "permitlisten=")
		if !ok {
			continue
		}
		_, port, err := net.SplitHostPort(strings.Trim(v, `"`))
		if err != nil {
			continue
		}
		if p, err := strconv.Atoi(port); err == nil {
			e.ListenPort = p
		}
	}
	return e, true
}

// AuthorizedKeysConfig configures an AuthorizedKeysFile.
type AuthorizedKeysConfig struct {
	// Path of the authorized_keys file (absolute), e.g.
	// /home/vma_tunnel/.ssh/authorized_keys.
	Path string
	// NBDTarget is the only permitopen destination (127.0.0.1:10809).
	NBDTarget string
	// Owner is the tunnel user. When the process runs as root, the file,
	// its .bak and lock files, and a directory the manager creates (or the
	// tunnel user's ~/.ssh) are given to root and the tunnel user's group;
	// otherwise ownership is left as it is. Nil: no chown.
	Owner *user.User
	Log   *slog.Logger
}

// AuthorizedKeysFile manages the VMA lines of one authorized_keys file. It
// is safe for concurrent use, also by several processes (flock).
type AuthorizedKeysFile struct {
	path      string
	nbdTarget string
	owner     *user.User
	uid, gid  int // the files' owner; -1: do not chown
	tunnelUID int // -1: unknown
	dirMode   fs.FileMode
	fileMode  fs.FileMode
	sshDir    bool
	log       *slog.Logger
	mu        sync.Mutex
	warned    bool // the home directory warning was given
}

// NewAuthorizedKeysFile checks cfg and returns the manager; it does not
// touch the file (Sync does).
func NewAuthorizedKeysFile(cfg AuthorizedKeysConfig) (*AuthorizedKeysFile, error) {
	if cfg.Path == "" || !filepath.IsAbs(cfg.Path) {
		return nil, fmt.Errorf("authorized_keys: path %q must be absolute", cfg.Path)
	}
	if cfg.NBDTarget == "" {
		cfg.NBDTarget = contract.NBDTarget
	}
	if err := checkPermitTarget(cfg.NBDTarget); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &AuthorizedKeysFile{path: filepath.Clean(cfg.Path), nbdTarget: cfg.NBDTarget, owner: cfg.Owner, uid: -1, gid: -1, tunnelUID: -1,
		dirMode: authorizedKeysDirMode, fileMode: authorizedKeysFileMode, log: cfg.Log}
	if cfg.Owner != nil {
		uid, err1 := strconv.Atoi(cfg.Owner.Uid)
		gid, err2 := strconv.Atoi(cfg.Owner.Gid)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("authorized_keys: user %s has no numeric uid/gid", cfg.Owner.Username)
		}
		a.sshDir = cfg.Owner.HomeDir != "" && filepath.Dir(a.path) == filepath.Join(cfg.Owner.HomeDir, ".ssh")
		a.tunnelUID = uid
		switch {
		case os.Geteuid() == 0:
			a.uid, a.gid = 0, gid
			a.dirMode, a.fileMode = rootOwnedDirMode, rootOwnedFileMode
		case os.Geteuid() != uid:
			a.log.Warn("not running as root: the authorized_keys file cannot be given to the tunnel user; make sure sshd accepts its owner",
				"path", a.path, "tunnel_user", cfg.Owner.Username)
		}
	}
	return a, nil
}

// Path is the managed file.
func (a *AuthorizedKeysFile) Path() string { return a.path }

// NBDTarget is the permitopen destination written into every line.
func (a *AuthorizedKeysFile) NBDTarget() string { return a.nbdTarget }

// Entries lists the lines the manager wrote, in file order.
func (a *AuthorizedKeysFile) Entries() ([]AuthorizedKeyEntry, error) {
	b, err := readRegular(a.path)
	if err != nil {
		return nil, err
	}
	var out []AuthorizedKeyEntry
	for _, l := range splitLines(b) {
		if e, ok := ParseAuthorizedKeyEntry(l); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// Add authorizes an approved enrollment: its line replaces any line of the
// same enrollment and any line of another enrollment of the same VMA name or
// the same key (approving a re-enrollment, or another holder of the key,
// revokes the old one in the same transaction).
// It returns the lines it removed, whose live sessions the caller may end.
func (a *AuthorizedKeysFile) Add(e *enroll.Enrollment) ([]AuthorizedKeyEntry, error) {
	line, err := AuthorizedKeyLine(e, a.nbdTarget)
	if err != nil {
		return nil, err
	}
	var removed []AuthorizedKeyEntry
	err = a.update(func(lines []string) ([]string, error) {
		out := make([]string, 0, len(lines)+1)
		placed := false
		for _, l := range lines {
			ent, ours := ParseAuthorizedKeyEntry(l)
			switch {
			case !ours:
				out = append(out, l)
			case ent.EnrollmentID == e.ID:
				if !placed {
					out = append(out, line)
					placed = true
				}
			case ent.VMAName == e.VMAName || ent.Fingerprint == e.VMAFingerprint:
				// Superseded: the same VMA name, or the same key under
				// another name (one key, one approved VMA).
				removed = append(removed, ent)
			default:
				out = append(out, l)
			}
		}
		if !placed {
			out = append(out, line)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// Remove de-authorizes an enrollment and returns the lines it removed
// (none when it had no line).
func (a *AuthorizedKeysFile) Remove(enrollmentID string) ([]AuthorizedKeyEntry, error) {
	var removed []AuthorizedKeyEntry
	err := a.update(func(lines []string) ([]string, error) {
		out := make([]string, 0, len(lines))
		for _, l := range lines {
			if ent, ours := ParseAuthorizedKeyEntry(l); ours && ent.EnrollmentID == enrollmentID {
				removed = append(removed, ent)
				continue
			}
			out = append(out, l)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// SyncResult says what a Sync changed.
type SyncResult struct {
	Added   []AuthorizedKeyEntry // lines written that were missing or different
	Removed []AuthorizedKeyEntry // lines of enrollments no longer approved
	Kept    int                  // lines already right
	Skipped []string             // ids of approved enrollments without a valid line (logged)
}

// Changed reports whether the file was rewritten.
func (r SyncResult) Changed() bool { return len(r.Added)+len(r.Removed) > 0 }

// Sync makes our lines exactly those of approved (the database state),
// leaving every other line alone: lines of enrollments not in approved go,
// missing or outdated lines are written. The file is rewritten only when
// something changed. Enrollments that are not approved are ignored.
func (a *AuthorizedKeysFile) Sync(approved []enroll.Enrollment) (SyncResult, error) {
	return a.SyncFunc(func() ([]enroll.Enrollment, error) { return approved, nil })
}

// SyncFunc is Sync with the approved enrollments read by load while the
// file is locked, so that a concurrent Add or Remove (in this process or
// another) for a change committed after the read is applied after the Sync,
// not overwritten by it.
func (a *AuthorizedKeysFile) SyncFunc(load func() ([]enroll.Enrollment, error)) (SyncResult, error) {
	var res SyncResult
	err := a.update(func(lines []string) ([]string, error) {
		approved, err := load()
		if err != nil {
			return nil, err
		}
		want := make(map[string]string, len(approved))
		var order []string
		for i := range approved {
			e := &approved[i]
			if e.Status != "" && e.Status != enroll.StatusApproved {
				continue
			}
			line, err := AuthorizedKeyLine(e, a.nbdTarget)
			if err != nil {
				a.log.Error("authorized_keys: cannot write the line of an approved enrollment", "enrollment_id", e.ID, "err", err)
				res.Skipped = append(res.Skipped, e.ID)
				continue
			}
			if _, dup := want[e.ID]; !dup {
				order = append(order, e.ID)
			}
			want[e.ID] = line
		}
		done := make(map[string]bool, len(want))
		out := make([]string, 0, len(lines)+len(want))
		for _, l := range lines {
			ent, ours := ParseAuthorizedKeyEntry(l)
			if !ours {
				out = append(out, l)
				continue
			}
			line, wanted := want[ent.EnrollmentID]
			switch {
			case !wanted:
				res.Removed = append(res.Removed, ent)
			case done[ent.EnrollmentID]:
				// A duplicate line of the same enrollment: drop it.
				res.Removed = append(res.Removed, ent)
			case ent.Line == line:
				out = append(out, l)
				done[ent.EnrollmentID] = true
				res.Kept++
			default:
				out = append(out, line)
				done[ent.EnrollmentID] = true
				upd, _ := ParseAuthorizedKeyEntry(line)
				res.Added = append(res.Added, upd)
			}
		}
		for _, id := range order {
			if !done[id] {
				out = append(out, want[id])
				ent, _ := ParseAuthorizedKeyEntry(want[id])
				res.Added = append(res.Added, ent)
			}
		}
		return out, nil
	})
	if err != nil {
		return SyncResult{Skipped: res.Skipped}, err
	}
	return res, nil
}

// update runs edit over the file's lines under the locks and writes the
// result when it differs from the current content.
func (a *AuthorizedKeysFile) update(edit func(lines []string) ([]string, error)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.ensureDir(); err != nil {
		return err
	}
	unlock, err := lockFile(a.path+".lock", a.uid, a.gid)
	if err != nil {
		return fmt.Errorf("authorized_keys: lock %s.lock: %w", a.path, err)
	}
	defer unlock()

	cur, err := readRegular(a.path)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	lines, err := edit(splitLines(cur))
	if err != nil {
		return err
	}
	next := joinLines(lines, cur)
	if existed && bytes.Equal(cur, next) {
		if err := a.fixPerms(a.path + ".bak"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return a.fixPerms(a.path)
	}
	if existed {
		if err := a.writeFile(a.path+".bak", cur); err != nil {
			return fmt.Errorf("authorized_keys: backup: %w", err)
		}
	}
	if err := a.writeFile(a.path, next); err != nil {
		return fmt.Errorf("authorized_keys: %w", err)
	}
	return nil
}

// ensureDir creates the file's directory when missing, and keeps the one
// it created or the tunnel user's ~/.ssh at the manager's mode and owner
// (root's, as root: an existing ~/.ssh of the tunnel user is taken over).
// The directory is opened without following a symbolic link and changed
// through that descriptor, so a link swapped in cannot redirect a chmod.
func (a *AuthorizedKeysFile) ensureDir() error {
	dir := filepath.Dir(a.path)
	created := false
	if err := os.Mkdir(dir, a.dirMode); err == nil {
		created = true
	} else if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("authorized_keys: create %s: its parent does not exist (does the tunnel user have a home directory? useradd --create-home)", dir)
	} else if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("authorized_keys: create %s: %w", dir, err)
	}
	d, err := openNoFollow(dir, true)
	if err != nil {
		if isLinkOrNotDir(err) {
			return fmt.Errorf("authorized_keys: %s is not a directory (symbolic links are refused)", dir)
		}
		return fmt.Errorf("authorized_keys: %w", err)
	}
	defer d.Close()
	fi, err := d.Stat()
	if err != nil {
		return fmt.Errorf("authorized_keys: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("authorized_keys: %s is not a directory (symbolic links are refused)", dir)
	}
	if created || a.sshDir {
		if fi.Mode().Perm() != a.dirMode {
			if err := d.Chmod(a.dirMode); err != nil {
				return fmt.Errorf("authorized_keys: chmod %s: %w", dir, err)
			}
		}
		if a.uid >= 0 && !ownedBy(fi, a.uid, a.gid) {
			if err := d.Chown(a.uid, a.gid); err != nil {
				return fmt.Errorf("authorized_keys: chown %s: %w", dir, err)
			}
			if !created {
				a.log.Info("authorized_keys: the directory is now root's, so the tunnel user cannot change its own key restrictions", "dir", dir)
			}
		}
		if created {
			if err := atomicfile.SyncDir(filepath.Dir(dir)); err != nil {
				return err
			}
		}
	} else if fi.Mode().Perm()&0o022 != 0 {
		a.log.Warn("authorized_keys: the directory is group or world writable; sshd (StrictModes) will ignore the file", "dir", dir)
	} else if a.uid == 0 && a.tunnelUID >= 0 && ownedBy(fi, a.tunnelUID, -1) {
		a.log.Warn("authorized_keys: the tunnel user owns the directory and could rewrite its own key restrictions; chown root it", "dir", dir)
	}
	a.warnHome(dir)
	return nil
}

// warnHome warns once when, as root, the directory's parent (the tunnel
// user's home) is the tunnel user's: it could move the root-owned .ssh
// aside and put its own there. The forced command keeps a tunnel key from
// running anything that could; chown root of the home is the second lock.
func (a *AuthorizedKeysFile) warnHome(dir string) {
	if a.warned || a.uid != 0 || a.tunnelUID < 0 {
		return
	}
	a.warned = true
	home := filepath.Dir(dir)
	if fi, err := os.Lstat(home); err == nil && ownedBy(fi, a.tunnelUID, -1) {
		a.log.Warn("authorized_keys: the tunnel user owns the directory above its key directory and could replace it; for a second lock besides the forced command, chown root:root it (sshd accepts a root-owned home)", "dir", home)
	}
}

// fixPerms restores the mode and owner of an unchanged file, on the open
// file (never following a symbolic link).
func (a *AuthorizedKeysFile) fixPerms(path string) error {
	f, err := openNoFollow(path, false)
	if err != nil {
		if isLinkOrNotDir(err) {
			return fmt.Errorf("authorized_keys: %s is not a regular file (symbolic links are refused)", path)
		}
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("authorized_keys: %s is not a regular file", path)
	}
	if fi.Mode().Perm() != a.fileMode {
		if err := f.Chmod(a.fileMode); err != nil {
			return fmt.Errorf("authorized_keys: chmod %s: %w", path, err)
		}
	}
	if a.uid >= 0 && !ownedBy(fi, a.uid, a.gid) {
		if err := f.Chown(a.uid, a.gid); err != nil {
			return fmt.Errorf("authorized_keys: chown %s: %w", path, err)
		}
	}
	return nil
}

// writeFile atomically replaces path, with the manager's mode and owner
// before it becomes visible.
func (a *AuthorizedKeysFile) writeFile(path string, data []byte) error {
	return atomicfile.WriteFileOwned(path, data, a.fileMode, a.uid, a.gid)
}

// readRegular reads path, refusing anything but a regular file (a symbolic
// link planted in place of authorized_keys must not make the manager copy
// another file's content into it). It opens without following a link and
// checks the open file, so nothing can be swapped in between.
func readRegular(path string) ([]byte, error) {
	f, err := openNoFollow(path, false)
	if err != nil {
		if isLinkOrNotDir(err) {
			return nil, fmt.Errorf("authorized_keys: %s is not a regular file (symbolic links are refused)", path)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("authorized_keys: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("authorized_keys: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("authorized_keys: %s is not a regular file (symbolic links are refused)", path)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("authorized_keys: %w", err)
	}
	return b, nil
}

// splitLines splits b into lines without their "\n" (a "\r" stays). A final
// newline does not make an extra empty line.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.Split(s, "\n")
}

// joinLines is the inverse of splitLines: every line ends in "\n", except
// that a file that had no final newline and keeps its last line unchanged
// keeps it without one (byte-for-byte preservation of foreign content).
func joinLines(lines []string, orig []byte) []byte {
	if len(lines) == 0 {
		return nil
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	out := b.Bytes()
	if len(orig) > 0 && orig[len(orig)-1] != '\n' && bytes.Equal(out[:len(out)-1], orig) {
		return orig
	}
	return out
}

// ResolveAuthorizedKeysPath turns the --authorized-keys-file setting into an
// absolute path and looks up the tunnel user (the file's owner):
//
//	""               ~<tunnelUser>/.ssh/authorized_keys
//	"~name/rest"     rest under the home directory of user name
//	"/abs/path"      as is
//
// The tunnel user must exist unless the path is absolute (then the returned
// user is nil when it does not: no chown).
func ResolveAuthorizedKeysPath(spec, tunnelUser string) (string, *user.User, error) {
	if spec == "" {
		spec = "~" + tunnelUser + "/.ssh/authorized_keys"
	}
	owner, ownerErr := user.Lookup(tunnelUser)
	if rest, ok := strings.CutPrefix(spec, "~"); ok {
		name, sub, _ := strings.Cut(rest, "/")
		if name == "" {
			return "", nil, fmt.Errorf("authorized_keys path %q: name the user (~%s/.ssh/authorized_keys) or give an absolute path", spec, tunnelUser)
		}
		u := owner
		if name != tunnelUser || ownerErr != nil {
			var err error
			if u, err = user.Lookup(name); err != nil {
				return "", nil, fmt.Errorf("authorized_keys path %q: %w (create the tunnel user: useradd --system --create-home --shell /usr/sbin/nologin %s)", spec, err, name)
			}
		}
		if u.HomeDir == "" {
			return "", nil, fmt.Errorf("authorized_keys path %q: user %s has no home directory", spec, name)
		}
		if ownerErr != nil {
			return "", nil, fmt.Errorf("tunnel user %q: %w (create it: useradd --system --create-home --shell /usr/sbin/nologin %s)", tunnelUser, ownerErr, tunnelUser)
		}
		return filepath.Join(u.HomeDir, filepath.FromSlash(sub)), owner, nil
	}
	if !filepath.IsAbs(spec) {
		return "", nil, fmt.Errorf("authorized_keys path %q must be absolute or start with ~user/", spec)
	}
	if ownerErr != nil {
		owner = nil
	}
	return filepath.Clean(spec), owner, nil
}
