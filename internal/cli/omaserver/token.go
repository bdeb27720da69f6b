package omaserver

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/oma-enroll/oma-enroll/internal/app"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/store"
)

func newTokenCmd(ios *cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke admin API tokens",
		Long: `Admin tokens authenticate omactl (and other admin API clients). Each has a
name, recorded as the actor of every change it makes. Only a hash is stored:
a new token is printed once and cannot be shown again.`,
		Example: `  oma-server token create --name alice > alice.token
  oma-server token list
  oma-server token revoke alice`,
		Args: cmdutil.NoArgs,
	}
	withService := func(cmd *cobra.Command, fn func(ctx context.Context, svc *enroll.Service, db *store.DB) error) error {
		v, err := config(cmd)
		if err != nil {
			return err
		}
		c, err := commonFrom(v)
		if err != nil {
			return err
		}
		db, err := c.openStore(cmd.Context())
		if err != nil {
			return err
		}
		defer db.Close()
		// create and revoke are audited: the chain needs its key (the one
		// serve uses; created here when the audit trail is still empty).
		keyFile, _ := cmd.Flags().GetString("audit-key-file")
		if keyFile == "" {
			keyFile = filepath.Join(c.DataDir, "audit.key")
		}
		log, err := c.logger(ios.ErrOut)
		if err != nil {
			return err
		}
		var key []byte
		if cmd.Name() != "list" {
			if key, err = app.LoadOrCreateAuditKey(cmd.Context(), keyFile, db, log); err != nil {
				return err
			}
		}
		return fn(cmd.Context(), enroll.New(db, enroll.Config{}, key, nil), db)
	}

	create := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a token and print it once on stdout",
		Long: `Create an admin token called --name and print it once on stdout; only its
hash is stored, so keep it now (redirect it into a file readable by its
owner only). The name is the actor of every change made with the token, in
the audit trail; it must be new (the name of a revoked token stays taken).
Creating it is audited (admin_token_created, actor local:<your user>).

It works on the database directly (run it on the OMA, as the service user,
with the service's settings); the running server accepts the token at once.
Give omactl the file with --token-file or token_file in its config file.`,
		Example: `  # A token for alice, into her omactl configuration
  sudo -u oma-enroll oma-server token create --name alice \
      > ~/.config/omactl/alice.token

  # A token for a CI job
  oma-server token create --name ci-bot > /etc/oma/ci.token`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, _ := cmd.Flags().GetString("name")
			if name == "" {
				return cmdutil.FlagErrorf("--name is required")
			}
			return withService(cmd, func(ctx context.Context, svc *enroll.Service, db *store.DB) error {
				tok, err := svc.CreateAdminTokenBy(ctx, name, localActor())
				if err != nil {
					if enroll.ErrorCode(err) == enroll.CodeConflict {
						return fmt.Errorf("a token named %q exists already (the name of a revoked token stays taken): pick another name", name)
					}
					return err
				}
				fmt.Fprintln(ios.Out, tok.Reveal())
				fmt.Fprintf(ios.ErrOut, "Created admin token %q. Store it now: it cannot be shown again.\n", name)
				return nil
			})
		},
	}
	create.Flags().String("name", "", "name of the token (recorded as the actor in the audit)")

	var listOutput string
	var noHeaders bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List admin tokens (names and dates, never the tokens)",
		Long: `List the admin tokens by name: when each was created, last used and revoked.
The tokens themselves are never shown (only their hashes are stored).

-o json prints one JSON array of {"name","created_at","last_used_at",
"revoked_at"} (times RFC 3339 UTC, null when not set); -o yaml the same as
YAML. --no-headers leaves out the table's header row.`,
		Example: `  # Which tokens exist, and when each was last used
  oma-server token list

  # The names of the tokens not revoked
  oma-server token list -o json |
      jq -r '.[] | select(.revoked_at == null) | .name'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch listOutput {
			case "table", "json", "yaml":
			default:
				return cmdutil.FlagErrorf("--output %q is not one of table, json, yaml", listOutput)
			}
			return withService(cmd, func(ctx context.Context, svc *enroll.Service, db *store.DB) error {
				toks, err := db.ListAdminTokens(ctx)
				if err != nil {
					return err
				}
				return writeTokens(ios, toks, listOutput, noHeaders)
			})
		},
	}
	list.Flags().StringVarP(&listOutput, "output", "o", "table", "output format: table, json or yaml")
	list.Flags().BoolVar(&noHeaders, "no-headers", false, "print the table without its header row")

	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an admin token; it is refused from then on",
		Long: `Revoke the admin token called NAME: the admin API and the web UI refuse it
from the next request on, and web UI sessions opened with it end (a running
server needs no restart). The token stays in 'token list' as revoked, and
its name stays taken. Revoking is audited (admin_token_revoked, actor
local:<your user>). A name with no live token is an error.

It works on the database directly: run it on the OMA, as the service user,
with the service's settings.`,
		Example: `  # alice has left: her token stops working at once
  sudo -u oma-enroll oma-server token revoke alice

  # A token someone saw: revoke it, then make a new one
  oma-server token revoke ci-bot
  oma-server token create --name ci-bot-2 > /etc/oma/ci.token`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withService(cmd, func(ctx context.Context, svc *enroll.Service, db *store.DB) error {
				if err := svc.RevokeAdminTokenBy(ctx, args[0], localActor()); err != nil {
					return err
				}
				fmt.Fprintf(ios.ErrOut, "Revoked admin token %q.\n", args[0])
				return nil
			})
		},
	}
	for _, c := range []*cobra.Command{create, revoke} {
		c.Flags().String("audit-key-file", "", "HMAC key of the audit chain (default <data-dir>/audit.key); the change is audited")
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// localActor names who ran 'oma-server token create|revoke' on this
// machine, for the audit: "local:<user>" (there is no admin token to name).
func localActor() enroll.Meta {
	name := "uid " + strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return enroll.Meta{Actor: enroll.Sanitize("local:"+name, 64)}
}

// tokenInfo is what 'token list -o json|yaml' prints of a token.
type tokenInfo struct {
	Name       string     `json:"name" yaml:"name"`
	CreatedAt  time.Time  `json:"created_at" yaml:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at" yaml:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at" yaml:"revoked_at"`
}

func writeTokens(ios *cmdutil.IOStreams, toks []enroll.AdminToken, output string, noHeaders bool) error {
	infos := make([]tokenInfo, len(toks))
	for i, t := range toks {
		infos[i] = tokenInfo{Name: enroll.Printable(t.Name), CreatedAt: t.CreatedAt.UTC(), LastUsedAt: utc(t.LastUsedAt), RevokedAt: utc(t.RevokedAt)}
	}
	switch output {
	case "json":
		b, err := json.MarshalIndent(infos, "", "  ")
		if err != nil {
			return err
		}
		_, err = ios.Out.Write(append(b, '\n'))
		return err
	case "yaml":
		b, err := yaml.Marshal(infos)
		if err != nil {
			return err
		}
		_, err = ios.Out.Write(b)
		return err
	}
	if len(infos) == 0 {
		fmt.Fprintln(ios.ErrOut, "No admin tokens.")
		return nil
	}
	tw := tabwriter.NewWriter(ios.Out, 0, 0, 2, ' ', 0)
	if !noHeaders {
		fmt.Fprintln(tw, "NAME\tCREATED\tLAST USED\tSTATUS")
	}
	for _, t := range infos {
		status := "active"
		if t.RevokedAt != nil {
			status = "revoked " + t.RevokedAt.Local().Format(time.DateTime)
		}
		last := "never"
		if t.LastUsedAt != nil {
			last = t.LastUsedAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.CreatedAt.Local().Format(time.DateTime), last, status)
	}
	return tw.Flush()
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
