package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/sshdkeys"
)

// opensshDriver makes the system sshd the tunnel endpoint: VMAs dial
// sshd's port and pin its host key, and the tunnel user's authorized_keys
// is kept in step with the database (unless the file is "none" and sshd
// asks `oma-server authorized-keys` only): a Sync at start, a line added
// after each approval and removed after each revocation (ending the VMA's
// live session), and a periodic Sync that repairs a missed reaction and
// picks up changes made through other instances.
type opensshDriver struct {
	hostKey string
	port    int
	every   time.Duration

	keys *sshdkeys.AuthorizedKeysFile // nil: --authorized-keys-file none
	db   enroll.Store
	// svc drops (and audits once) the keys the key expiry policy refuses.
	svc *enroll.Service
	log *slog.Logger
	// mu orders reactions and syncs of this process (the manager's file
	// lock orders processes too); a sync reads the database under that
	// lock, so a reaction for a change committed after the read always
	// comes later.
	mu sync.Mutex
}

func newOpenSSHDriver(ctx context.Context, cfg *Config, db enroll.Store, svc *enroll.Service, log *slog.Logger) (*opensshDriver, error) {
	t := cfg.Tunnel
	b, err := os.ReadFile(t.SSHHostKey)
	if err != nil {
		return nil, fmt.Errorf("openssh tunnel mode needs sshd's public host key: %w (set --ssh-host-key)", err)
	}
	d := &opensshDriver{hostKey: strings.TrimSpace(string(b)), port: t.SSHPort, every: t.AuthorizedKeysResync, db: db, svc: svc, log: log}
	if t.AuthorizedKeysFile == "none" {
		return d, nil
	}
	path, owner, err := sshdkeys.ResolveAuthorizedKeysPath(t.AuthorizedKeysFile, t.User)
	if err != nil {
		return nil, fmt.Errorf("openssh tunnel mode: %w", err)
	}
	if owner == nil {
		log.Warn("the tunnel user does not exist; sshd will not log anyone in as it", "tunnel_user", t.User)
	}
	keys, err := sshdkeys.NewAuthorizedKeysFile(sshdkeys.AuthorizedKeysConfig{Path: path, NBDTarget: t.NBDTarget, Owner: owner, Log: log})
	if err != nil {
		return nil, fmt.Errorf("openssh tunnel mode: %w", err)
	}
	d.keys, d.log = keys, log.With("authorized_keys", path)
	if err := d.sync(ctx); err != nil {
		return nil, fmt.Errorf("%w (or set --authorized-keys-file none when sshd uses only the AuthorizedKeysCommand)", err)
	}
	return d, nil
}

func (d *opensshDriver) Name() string             { return "openssh" }
func (d *opensshDriver) Advertise() (string, int) { return d.hostKey, d.port }
func (d *opensshDriver) LiveTunnels() int         { return 0 }
func (d *opensshDriver) Close() error             { return nil }
func (d *opensshDriver) Attach(context.Context, *server.Server, *server.Metrics) (server.PublicListener, error) {
	return nil, nil
}

// sync rewrites our lines from the approved enrollments in the database,
// but for the keys the key expiry policy refuses (their first refusal is
// audited as key_expired).
func (d *opensshDriver) sync(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	res, err := d.keys.SyncFunc(func() ([]enroll.Enrollment, error) {
		list, err := d.db.ListEnrollments(ctx, enroll.EnrollmentFilter{Statuses: []enroll.Status{enroll.StatusApproved}})
		if err != nil || d.svc == nil {
			return list, err
		}
		kept, _, err := d.svc.UnexpiredKeys(ctx, list, enroll.Meta{Actor: "authorized_keys sync"})
		return kept, err
	})
	if err != nil {
		return fmt.Errorf("authorized_keys sync: %w", err)
	}
	if res.Changed() {
		d.log.Info("authorized_keys synced with the database", "added", len(res.Added), "removed", len(res.Removed), "kept", res.Kept)
	}
	d.endSessions(res.Removed)
	return nil
}

// Run syncs every --authorized-keys-resync until ctx ends.
func (d *opensshDriver) Run(ctx context.Context) error {
	if d.keys == nil || d.every <= 0 {
		return nil
	}
	tk := time.NewTicker(d.every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
		if err := d.sync(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("periodic authorized_keys sync failed", "err", err)
		}
	}
}

// OnApprove authorizes the key of a just-approved enrollment (the
// transaction has committed). A failure is logged loudly; the next sync
// and the AuthorizedKeysCommand cover it.
func (d *opensshDriver) OnApprove(e *enroll.Enrollment) {
	if d.keys == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	removed, err := d.keys.Add(e)
	if err != nil {
		d.log.Error("APPROVED BUT NOT WRITTEN to authorized_keys: the VMA cannot log in until the next sync (or use the AuthorizedKeysCommand)",
			"enrollment_id", e.ID, "vma_name", e.VMAName, "err", err)
		return
	}
	d.log.Info("authorized_keys: key added", "enrollment_id", e.ID, "vma_name", e.VMAName, "superseded", len(removed))
	d.endSessions(removed)
}

// OnRevoke removes the key of a just-revoked enrollment and ends its live
// session where it can be found.
func (d *opensshDriver) OnRevoke(e *enroll.Enrollment) {
	if d.keys == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	removed, err := d.keys.Remove(e.ID)
	if err != nil {
		d.log.Error("REVOKED BUT STILL IN authorized_keys: the key can log in until the next sync removes it (the AuthorizedKeysCommand refuses it already)",
			"enrollment_id", e.ID, "vma_name", e.VMAName, "err", err)
		return
	}
	d.log.Info("authorized_keys: key removed", "enrollment_id", e.ID, "vma_name", e.VMAName, "lines", len(removed))
	d.endSessions(removed)
}

func (d *opensshDriver) endSessions(removed []sshdkeys.AuthorizedKeyEntry) {
	if len(removed) == 0 {
		return
	}
	pids, err := d.keys.EndSessions(removed)
	if err != nil {
		d.log.Warn("could not end the live sshd session of a removed key; it stays up until it disconnects", "err", err)
	}
	for _, e := range removed {
		d.log.Info("authorized_keys: de-authorized", "enrollment_id", e.EnrollmentID, "vma_name", e.VMAName, "tunnel_port", e.ListenPort, "sessions_ended", len(pids))
	}
}
