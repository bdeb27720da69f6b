package omaserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/store"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/sshdkeys"
)

func newAuthorizedKeysCmd(ios *cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "authorized-keys USER [KEY_TYPE KEY_BLOB]",
		Short: "Print the restricted authorized_keys lines of approved VMAs",
		Long: `Print, from the database, the authorized_keys line of every approved VMA
when USER is the tunnel user (--tunnel-user); nothing for any other user.
With KEY_TYPE and KEY_BLOB (sshd's %t %k) only the line of that key. Each
line allows the VMA's two forwards and nothing else (one line, wrapped here):

  restrict,port-forwarding,command="/bin/false",permitopen="<nbd-target>",
  permitlisten="127.0.0.1:<tunnel_port>" ssh-ed25519 AAAA... vma-enroll:...

It is meant for sshd in the openssh tunnel mode:

  AuthorizedKeysCommand /usr/local/bin/oma-server authorized-keys %u %t %k

sshd runs it at every login, so an approval lets the VMA in and a revocation
shuts it out for new connections at once, whatever the state of the
authorized_keys file. ` + "`oma-server sshd-config`" + ` prints the whole sshd block.

It reads the same settings as serve (--config, OMA_* environment, flags) for
the database; sshd runs the command with an almost empty environment, so put
the settings into the config file or on the command line, and run it as a
user that can read the database (AuthorizedKeysCommandUser). It writes only
key lines to stdout; errors go to stderr with exit status 1 (sshd then
accepts no key from the command: it fails closed). Not being the tunnel user,
or an unknown key, is not an error: nothing is printed, exit status 0.

With a key expiry policy (--key-max-age, --key-expiry-grace: give them the
same values as serve, e.g. in the shared config file) a key older than the
max age plus the grace is not printed: sshd refuses it.`,
		Example: `  # What sshd would get for the tunnel user
  oma-server authorized-keys vma_tunnel

  # Only the line of one key, as sshd asks with %u %t %k
  oma-server authorized-keys vma_tunnel ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA...`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 && len(args) != 3 {
				return cmdutil.FlagErrorf("authorized-keys takes USER, or USER KEY_TYPE KEY_BLOB (sshd's %%u %%t %%k); got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := config(cmd)
			if err != nil {
				return err
			}
			o, err := authorizedKeysOptionsFrom(v, args)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 20*time.Second)
			defer cancel()
			return runAuthorizedKeys(ctx, o, ios.Out)
		},
	}
	f := cmd.Flags()
	f.String("tunnel-user", contract.TunnelUser, "SSH user of the tunnels (keys are printed for this user only)")
	f.String("nbd-target", contract.NBDTarget, "OMA address the VMAs' NBD forward reaches (the permitopen of every line)")
	addKeyPolicyFlags(f)
	return cmd
}

type authorizedKeysOptions struct {
	common
	User, KeyType, KeyBlob string
	TunnelUser, NBDTarget  string
	KeyPolicy              enroll.KeyPolicy
}

func authorizedKeysOptionsFrom(v *viper.Viper, args []string) (authorizedKeysOptions, error) {
	c, err := commonFrom(v)
	if err != nil {
		return authorizedKeysOptions{}, err
	}
	o := authorizedKeysOptions{common: c, User: args[0], TunnelUser: v.GetString("tunnel_user"), NBDTarget: v.GetString("nbd_target")}
	if len(args) == 3 {
		o.KeyType, o.KeyBlob = args[1], args[2]
	}
	if o.KeyPolicy, err = keyPolicyFrom(v); err != nil {
		return o, err
	}
	return o, nil
}

// runAuthorizedKeys prints the lines sshd should accept for o.User.
func runAuthorizedKeys(ctx context.Context, o authorizedKeysOptions, out io.Writer) error {
	if o.User != o.TunnelUser {
		return nil
	}
	fp, canon := "", ""
	if o.KeyType != "" {
		if o.KeyType != "ssh-ed25519" {
			return nil // VMAs only ever enroll Ed25519 keys
		}
		pub, c, err := sshkey.ParseAuthorizedKey(o.KeyType + " " + o.KeyBlob)
		if err != nil {
			return nil
		}
		fp, canon = sshkey.Fingerprint(pub), c
	}
	db, err := openStoreReadOnly(ctx, o.common)
	if err != nil {
		return err
	}
	defer db.Close()
	var list []enroll.Enrollment
	if fp != "" {
		list, err = db.ApprovedByFingerprint(ctx, fp)
	} else {
		list, err = db.ListEnrollments(ctx, enroll.EnrollmentFilter{Statuses: []enroll.Status{enroll.StatusApproved}})
	}
	if err == nil {
		// Keys older than the key expiry policy allows are refused here
		// too (serve's sync audits them; this command only reads).
		list, _, err = enroll.SplitExpiredKeys(ctx, db, o.KeyPolicy, list, time.Now())
	}
	if err != nil {
		return fmt.Errorf("read approved enrollments: %w", err)
	}
	var b bytes.Buffer
	for i := range list {
		e := &list[i]
		if canon != "" && e.VMAPublicKey != canon {
			continue
		}
		line, err := sshdkeys.AuthorizedKeyLine(e, o.NBDTarget)
		if err != nil {
			continue // not a line sshd should ever see; serve logs it at Sync
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	_, err = out.Write(b.Bytes())
	return err
}

// openStoreReadOnly opens the database for reading without creating
// anything: a missing SQLite file is an error, not a new empty database.
func openStoreReadOnly(ctx context.Context, c common) (*store.DB, error) {
	if c.Driver == store.DriverSQLite && !strings.HasPrefix(c.DSN, "file:") {
		if _, err := os.Stat(c.DSN); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("no database at %s: set --data-dir or --db-dsn (or --config) as for serve", c.DSN)
			}
			return nil, fmt.Errorf("database %s: %w (the AuthorizedKeysCommandUser must be able to read it)", c.DSN, err)
		}
	}
	db, err := store.Open(ctx, c.Driver, c.DSN, store.Options{MaxOpenConns: 1})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", c.Driver, err)
	}
	return db, nil
}
