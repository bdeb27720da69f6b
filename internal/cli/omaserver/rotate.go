package omaserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/app"
	"github.com/oma-enroll/oma-enroll/internal/atomicfile"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/omakeys"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// DefaultOverlap is how long a staged OMA key is announced before
// 'rotate --complete' switches to it without --force.
const DefaultOverlap = 24 * time.Hour

// rotateOptions are the settings of one 'oma-server rotate ...' run.
type rotateOptions struct {
	Files    omakeys.Files
	Key      string // enroll.OMAKeySSHHost or enroll.OMAKeyTLSCert
	Overlap  time.Duration
	Complete bool
	Abort    bool
	Force    bool
	Output   string
	// CertFile and KeyFile stage this certificate instead of a new
	// self-signed one (tls-cert).
	CertFile, KeyFile string
	Now               func() time.Time
}

// rotateResult is what rotate prints (-o json).
type rotateResult struct {
	Key                string     `json:"key"`
	Phase              string     `json:"phase"`
	CurrentFingerprint string     `json:"current_fingerprint"`
	NextFingerprint    string     `json:"next_fingerprint"`
	OverlapUntil       *time.Time `json:"overlap_until,omitempty"`
	Message            string     `json:"message"`
}

func newRotateCmd(ios *cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate the OMA's SSH host key or TLS certificate",
		Long: `Rotate the OMA's own SSH host key (embedded tunnel mode) or the TLS
certificate of the public listener in three steps, without a person on any
enrolled VMA (docs/rotation.md):

  1. 'rotate KEY' stages the next key in the data directory beside the
     current one. A running oma-server picks it up within a second and, for
     the overlap, announces it: the tunnel endpoint sends its host keys to
     each VMA tunnel (OpenSSH's hostkeys-00@openssh.com, proven on request),
     GET /api/v1/vma/self carries the next certificate's pin
     (oma_next_fingerprint). VMAs trust it beside the current one.
  2. Wait for the overlap (--overlap, default 24h): VMAs that are off learn
     the next key when they next connect during it.
  3. 'rotate KEY --complete' makes the next key the current one; the
     running server presents it within a second. VMAs that learned it
     connect with no change; the previous key is no longer trusted by them
     once they connected to the new one.

'rotate KEY --abort' drops a staged key. Every step is audited
(oma_key_rotation, with both fingerprints). The commands change files in
--data-dir and write the audit to the database, so run them as the service
user with the service's configuration; with several instances, give every
instance the same files (the key files are the OMA's identity).`,
		Example: `  oma-server rotate ssh-host-key
  oma-server rotate ssh-host-key --complete
  oma-server rotate tls-cert --overlap 72h
  oma-server rotate tls-cert --cert /etc/oma/new.crt --key /etc/oma/new.key
  oma-server rotate tls-cert --complete -o json`,
		Args: cmdutil.NoArgs,
	}
	sshCmd := &cobra.Command{
		Use:   "ssh-host-key",
		Short: "Stage, complete or abort the rotation of the SSH host key",
		Long: `Rotate the SSH host key of the embedded tunnel endpoint
(<data-dir>/ssh_host_ed25519_key; the next one is staged as
ssh_host_ed25519_key.next).

During the overlap the endpoint keeps presenting the current key in the
handshake and announces both keys after each tunnel login (and at once to
the tunnels already up): vma-enroll tunnel records the next key in
enrollment.json and known_hosts, OpenSSH clients with UpdateHostKeys yes (the
ssh_config vma-enroll writes) in known_hosts. After --complete the endpoint
presents the next key, and approvals hand it out.

In the openssh tunnel mode sshd holds the host key: add the next key as a
second HostKey line in sshd_config and reload sshd (it announces both), then
later remove the old one and point --ssh-host-key at the new one.`,
		Example: `  oma-server rotate ssh-host-key              # stage; announced for 24h
  oma-server rotate ssh-host-key --overlap 1h
  oma-server rotate ssh-host-key --complete   # after the overlap
  oma-server rotate ssh-host-key --abort`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRotateCmd(cmd, ios, enroll.OMAKeySSHHost)
		},
	}
	tlsCmd := &cobra.Command{
		Use:   "tls-cert",
		Short: "Stage, complete or abort the rotation of the TLS certificate",
		Long: `Rotate the TLS certificate of the public listener, whose public key VMAs pin
(oma_fingerprint). The next certificate is staged as <data-dir>/tls-next.crt
and tls-next.key: a new self-signed one (with the current certificate's
names), or the pair --cert/--key names (e.g. from your CA).

During the overlap the listener keeps presenting the current certificate and
GET /api/v1/vma/self announces the next one's pin (oma_next_fingerprint);
vma-enroll records it (tunnel, at each connection and every 10 minutes, and
status) and trusts it beside the current pin. --complete installs the next
certificate as the current one: over --tls-cert/--tls-key when the server
uses them (the same settings as serve's), else over <data-dir>/tls.crt and
tls.key. Join commands show the new fingerprint from then on.

A renewal that keeps the key (e.g. certbot --reuse-key) keeps the pin: just
replace the files; the running server loads them within a second. A new key
needs this rotation, or every VMA refuses the OMA.`,
		Example: `  oma-server rotate tls-cert             # stage a new self-signed certificate
  oma-server rotate tls-cert --cert new.crt --key new.key   # or your CA's
  oma-server rotate tls-cert --complete  # after the overlap
  oma-server rotate tls-cert --abort`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRotateCmd(cmd, ios, enroll.OMAKeyTLSCert)
		},
	}
	for _, c := range []*cobra.Command{sshCmd, tlsCmd} {
		f := c.Flags()
		f.Duration("overlap", DefaultOverlap, "how long the next key is announced before --complete switches without --force (0 to 720h)")
		f.Bool("complete", false, "switch to the staged next key (after the overlap)")
		f.Bool("abort", false, "drop the staged next key")
		f.Bool("force", false, "with --complete: switch before the overlap ends (VMAs that have not learned the next key then need a person)")
		f.StringP("output", "o", "text", "output format: text or json")
		f.String("audit-key-file", "", "HMAC key of the audit chain (default <data-dir>/audit.key); the change is audited")
	}
	tf := tlsCmd.Flags()
	tf.String("cert", "", "PEM certificate to stage as the next one (with --key; default: a new self-signed certificate)")
	tf.String("key", "", "PEM private key of --cert")
	tf.String("tls-cert", "", "the current certificate, as serve's --tls-cert (default <data-dir>/tls.crt); --complete writes the next one there")
	tf.String("tls-key", "", "the current key, as serve's --tls-key (default <data-dir>/tls.key)")
	cmd.AddCommand(sshCmd, tlsCmd)
	return cmd
}

func runRotateCmd(cmd *cobra.Command, ios *cmdutil.IOStreams, key string) error {
	v, err := config(cmd)
	if err != nil {
		return err
	}
	c, err := commonFrom(v)
	if err != nil {
		return err
	}
	fl := cmd.Flags()
	o := rotateOptions{Key: key, Now: time.Now, Files: omakeys.Files{DataDir: c.DataDir}}
	o.Overlap, _ = fl.GetDuration("overlap")
	o.Complete, _ = fl.GetBool("complete")
	o.Abort, _ = fl.GetBool("abort")
	o.Force, _ = fl.GetBool("force")
	o.Output, _ = fl.GetString("output")
	if key == enroll.OMAKeyTLSCert {
		o.CertFile, _ = fl.GetString("cert")
		o.KeyFile, _ = fl.GetString("key")
		o.Files.TLSCert, o.Files.TLSKey = v.GetString("tls_cert"), v.GetString("tls_key")
	}
	switch {
	case o.Output == "table":
		o.Output = "text"
	case o.Output != "text" && o.Output != "json":
		return cmdutil.FlagErrorf("--output %q is not one of text, json", o.Output)
	}
	if o.Complete && o.Abort {
		return cmdutil.FlagErrorf("--complete and --abort exclude each other")
	}
	if o.Force && !o.Complete {
		return cmdutil.FlagErrorf("--force goes with --complete")
	}
	if o.Overlap < 0 || o.Overlap > 720*time.Hour {
		return cmdutil.FlagErrorf("--overlap %s: use 0 to 720h, like 24h", o.Overlap)
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return cmdutil.FlagErrorf("give both --cert and --key, or neither for a new self-signed certificate")
	}
	if o.CertFile != "" && (o.Complete || o.Abort) {
		return cmdutil.FlagErrorf("--cert and --key stage a certificate: they do not go with --complete or --abort")
	}
	if (o.Files.TLSCert == "") != (o.Files.TLSKey == "") {
		return cmdutil.FlagErrorf("give both --tls-cert and --tls-key, or neither")
	}
	db, err := c.openStore(cmd.Context())
	if err != nil {
		return err
	}
	defer db.Close()
	keyFile, _ := fl.GetString("audit-key-file")
	if keyFile == "" {
		keyFile = v.GetString("audit_key_file")
	}
	if keyFile == "" {
		keyFile = filepath.Join(c.DataDir, "audit.key")
	}
	log, err := c.logger(ios.ErrOut)
	if err != nil {
		return err
	}
	auditKey, err := app.LoadOrCreateAuditKey(cmd.Context(), keyFile, db, log)
	if err != nil {
		return err
	}
	did, err := o.Files.Repair()
	if err != nil {
		return fmt.Errorf("finish an interrupted key switch: %w", err)
	}
	for _, d := range did {
		fmt.Fprintln(ios.ErrOut, "oma-server rotate: "+d)
	}
	svc := enroll.New(db, enroll.Config{}, auditKey, nil)
	res, err := rotateOMAKey(cmd.Context(), svc, o)
	if err != nil {
		return err
	}
	if o.Output == "json" {
		enc := json.NewEncoder(ios.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintln(ios.Out, res.Message)
	return nil
}

// omaKey is one of the OMA's keys, as rotate handles it.
type omaKey interface {
	current() (string, error) // the fingerprint in use
	staged() (string, error)  // the staged next fingerprint, "" when none
	stage(o rotateOptions) (fp string, write func() error, err error)
	complete() error // makes the staged key the current one
	drop() error     // removes the staged key
	name() string    // for messages
	announce() string
}

// rotateOMAKey runs one step of a rotation.
func rotateOMAKey(ctx context.Context, svc *enroll.Service, o rotateOptions) (*rotateResult, error) {
	var k omaKey = sshHostKey{o.Files}
	cmdName := "oma-server rotate ssh-host-key"
	if o.Key == enroll.OMAKeyTLSCert {
		k, cmdName = tlsCertKey{o.Files}, "oma-server rotate tls-cert"
	}
	cur, err := k.current()
	if err != nil {
		return nil, err
	}
	next, err := k.staged()
	if err != nil {
		return nil, err
	}
	rot := o.Files.LoadRotation()
	rec := rot[o.Key]
	res := &rotateResult{Key: o.Key, CurrentFingerprint: cur, NextFingerprint: next}
	meta := localActor()
	switch {
	case o.Complete || o.Abort:
		if next == "" {
			return nil, fmt.Errorf("no rotation of the %s is staged (no next key in %s): start one with '%s'", k.name(), o.Files.DataDir, cmdName)
		}
		if o.Complete && !o.Force && rec == nil {
			return nil, fmt.Errorf("%s has no record of this rotation's overlap (removed or damaged), so it cannot tell whether VMAs had the time to learn the next key. Once they had (see the started event: omactl audit --type oma_key_rotation), run this again with --force",
				o.Files.Path(omakeys.FileRotation))
		}
		if o.Complete && !o.Force && o.Now().Before(rec.OverlapUntil) {
			return nil, fmt.Errorf("the overlap lasts until %s (%s from now): VMAs that have not connected since the rotation started learn the next key until then. Run this again after it, or add --force to switch now",
				rec.OverlapUntil.Local().Format(time.DateTime), rec.OverlapUntil.Sub(o.Now()).Round(time.Second))
		}
		res.Phase = enroll.OMARotationAborted
		apply := k.drop
		if o.Complete {
			res.Phase, apply = enroll.OMARotationCompleted, k.complete
		}
		// The event commits first, then the files switch: a switch that
		// cannot be audited does not happen, and one cut short after the
		// commit is finished by a rerun (or by Repair, for a crash between
		// the renames of a certificate and its key).
		err := svc.RecordOMAKeyRotation(ctx, enroll.OMAKeyRotation{Key: o.Key, Phase: res.Phase, CurrentFingerprint: cur, NextFingerprint: next}, meta, nil)
		if err != nil {
			return nil, err
		}
		if err := apply(); err != nil {
			flags := "--complete --force" // the overlap was checked already
			if o.Abort {
				flags = "--abort"
			}
			return nil, fmt.Errorf("the audit trail records the %s step, but the files could not be changed: %w; fix the cause and run '%s %s' again", res.Phase, err, cmdName, flags)
		}
		delete(rot, o.Key)
		if err := o.Files.SaveRotation(rot); err != nil {
			return nil, err
		}
		if o.Complete {
			res.Message = fmt.Sprintf("The %s is now %s (was %s). A running oma-server uses it within a second; VMAs that learned it during the overlap connect as before.", k.name(), next, cur)
		} else {
			res.Message = fmt.Sprintf("Dropped the staged %s %s; %s stays in use. VMAs stop trusting the dropped key when they next ask the OMA.", k.name(), next, cur)
		}
		return res, nil
	}
	if next != "" {
		since := ""
		if rec != nil {
			since = " since " + rec.StartedAt.Local().Format(time.DateTime)
		}
		return nil, fmt.Errorf("a rotation of the %s is already staged%s (next %s): finish it with '%s --complete', or drop it with '%s --abort'", k.name(), since, next, cmdName, cmdName)
	}
	nextFP, write, err := k.stage(o)
	if err != nil {
		return nil, err
	}
	if nextFP == cur {
		return nil, fmt.Errorf("the %s to stage is the one in use (%s): give another one", k.name(), cur)
	}
	now := o.Now().UTC()
	until := now.Add(o.Overlap)
	rot[o.Key] = &omakeys.RotationRecord{CurrentFingerprint: cur, NextFingerprint: nextFP, StartedAt: now, OverlapUntil: until}
	// The overlap is recorded with the staged key, before the commit: a
	// crash after the commit leaves no staged key without its overlap (a
	// record left by a failed commit is ignored without a staged key, and
	// replaced by the next stage).
	err = svc.RecordOMAKeyRotation(ctx, enroll.OMAKeyRotation{Key: o.Key, Phase: enroll.OMARotationStarted, CurrentFingerprint: cur, NextFingerprint: nextFP, OverlapUntil: &until}, meta, func() error {
		if err := write(); err != nil {
			return err
		}
		return o.Files.SaveRotation(rot)
	})
	if err != nil {
		_ = k.drop() // write may have run before the commit failed
		return nil, err
	}
	res.Phase, res.NextFingerprint, res.OverlapUntil = enroll.OMARotationStarted, nextFP, &until
	res.Message = fmt.Sprintf("Staged the next %s %s beside %s. A running oma-server announces it within a second (%s). After %s run:\n  %s --complete",
		k.name(), nextFP, cur, k.announce(), until.Local().Format(time.DateTime), cmdName)
	return res, nil
}

// sshHostKey is the embedded endpoint's SSH host key.
type sshHostKey struct{ f omakeys.Files }

func (sshHostKey) name() string { return "SSH host key" }

func (sshHostKey) announce() string {
	return "to every VMA tunnel after its login; vma-enroll tunnel and OpenSSH clients with UpdateHostKeys record it"
}

func keyFingerprint(path string) (string, error) {
	s, err := omakeys.LoadSigner(path)
	if err != nil {
		return "", err
	}
	return ssh.FingerprintSHA256(s.PublicKey()), nil
}

func (k sshHostKey) current() (string, error) {
	fp, err := keyFingerprint(k.f.Path(omakeys.FileHostKey))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("there is no SSH host key in %s yet: oma-server serve creates it at its first start (embedded tunnel mode)", k.f.DataDir)
	}
	return fp, err
}

func (k sshHostKey) staged() (string, error) {
	fp, err := keyFingerprint(k.f.Path(omakeys.FileHostKeyNext))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return fp, err
}

func (k sshHostKey) stage(rotateOptions) (string, func() error, error) {
	pub, priv, err := sshkey.Generate(nil)
	if err != nil {
		return "", nil, err
	}
	pem, err := sshkey.MarshalPrivateKey(priv, "oma-server")
	if err != nil {
		return "", nil, err
	}
	p := k.f.Path(omakeys.FileHostKeyNext)
	return sshkey.Fingerprint(pub), func() error {
		if err := atomicfile.WriteFile(p, pem, 0o600); err != nil {
			return err
		}
		return atomicfile.WriteFile(p+".pub", []byte(sshkey.AuthorizedKey(pub, "oma-server")+"\n"), 0o644)
	}, nil
}

func (k sshHostKey) complete() error {
	p, next := k.f.Path(omakeys.FileHostKey), k.f.Path(omakeys.FileHostKeyNext)
	if err := os.Rename(next, p); err != nil {
		return err
	}
	if err := os.Rename(next+".pub", p+".pub"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(k.f.DataDir)
}

func (k sshHostKey) drop() error {
	p := k.f.Path(omakeys.FileHostKeyNext)
	for _, f := range []string{p, p + ".pub"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// tlsCertKey is the public listener's certificate.
type tlsCertKey struct{ f omakeys.Files }

func (tlsCertKey) name() string { return "TLS certificate" }

func (tlsCertKey) announce() string {
	return "as oma_next_fingerprint of GET /api/v1/vma/self; vma-enroll records it"
}

func (k tlsCertKey) current() (string, error) {
	c, key := k.f.TLSPair()
	cert, err := server.LoadPair(c, key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && k.f.TLSCert == "" {
			return "", fmt.Errorf("there is no TLS certificate in %s yet: oma-server serve creates it at its first start (or set --tls-cert/--tls-key as serve has them)", k.f.DataDir)
		}
		return "", err
	}
	return server.SPKIFingerprint(cert.Leaf), nil
}

func (k tlsCertKey) staged() (string, error) {
	if !omakeys.Exists(k.f.Path(omakeys.FileTLSNextCert)) {
		return "", nil
	}
	cert, err := server.LoadPair(k.f.Path(omakeys.FileTLSNextCert), k.f.Path(omakeys.FileTLSNextKey))
	if err != nil {
		return "", fmt.Errorf("the staged certificate is damaged (%w): drop it with 'oma-server rotate tls-cert --abort'", err)
	}
	return server.SPKIFingerprint(cert.Leaf), nil
}

func (k tlsCertKey) stage(o rotateOptions) (string, func() error, error) {
	nextCert, nextKey := k.f.Path(omakeys.FileTLSNextCert), k.f.Path(omakeys.FileTLSNextKey)
	if o.CertFile != "" {
		cert, err := server.LoadPair(o.CertFile, o.KeyFile)
		if err != nil {
			return "", nil, err
		}
		certPEM, err := os.ReadFile(o.CertFile)
		if err != nil {
			return "", nil, err
		}
		keyPEM, err := os.ReadFile(o.KeyFile)
		if err != nil {
			return "", nil, err
		}
		return server.SPKIFingerprint(cert.Leaf), func() error {
			if err := atomicfile.WriteFile(nextKey, keyPEM, 0o600); err != nil {
				return err
			}
			return atomicfile.WriteFile(nextCert, certPEM, 0o644)
		}, nil
	}
	// A new self-signed certificate with the current one's names, made
	// aside first so that its fingerprint goes into the audit.
	c, key := k.f.TLSPair()
	cur, err := server.LoadPair(c, key)
	if err != nil {
		return "", nil, err
	}
	hosts := append([]string{}, cur.Leaf.DNSNames...)
	for _, ip := range cur.Leaf.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	tmp, err := os.MkdirTemp(k.f.DataDir, ".tls-next-")
	if err != nil {
		return "", nil, err
	}
	tc, tk := filepath.Join(tmp, omakeys.FileTLSNextCert), filepath.Join(tmp, omakeys.FileTLSNextKey)
	cert, err := server.CreateSelfSigned(tc, tk, hosts)
	if err != nil {
		os.RemoveAll(tmp)
		return "", nil, err
	}
	return server.SPKIFingerprint(cert.Leaf), func() error {
		defer os.RemoveAll(tmp)
		if err := os.Rename(tk, nextKey); err != nil {
			return err
		}
		if err := os.Rename(tc, nextCert); err != nil {
			return err
		}
		return atomicfile.SyncDir(k.f.DataDir)
	}, nil
}

func (k tlsCertKey) complete() error {
	nextCert, nextKey := k.f.Path(omakeys.FileTLSNextCert), k.f.Path(omakeys.FileTLSNextKey)
	if _, err := tls.LoadX509KeyPair(nextCert, nextKey); err != nil {
		return fmt.Errorf("the staged certificate: %w", err)
	}
	c, key := k.f.TLSPair()
	if k.f.TLSCert == "" {
		if err := os.Rename(nextKey, key); err != nil {
			return err
		}
		if err := os.Rename(nextCert, c); err != nil {
			return err
		}
		return atomicfile.SyncDir(k.f.DataDir)
	}
	// The server reads --tls-cert/--tls-key: the next pair goes there.
	for _, f := range []struct {
		from, to string
		mode     os.FileMode
	}{{nextKey, key, 0o600}, {nextCert, c, 0o644}} {
		data, err := os.ReadFile(f.from)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(f.to, data, f.mode); err != nil {
			return err
		}
	}
	return k.drop()
}

func (k tlsCertKey) drop() error {
	for _, f := range []string{k.f.Path(omakeys.FileTLSNextKey), k.f.Path(omakeys.FileTLSNextCert)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
