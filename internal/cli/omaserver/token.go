package omaserver

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

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
		Args: cobra.NoArgs,
	}
	withService := func(cmd *cobra.Command, fn func(ctx context.Context, svc *enroll.Service, db *store.DB) error) error {
		v, err := loadConfig(cmd)
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
		return fn(cmd.Context(), enroll.New(db, enroll.Config{}, nil, nil), db)
	}

	create := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a token and print it once on stdout",
		Example: `  oma-server token create --name alice
  oma-server token create --name ci-bot > /etc/oma/ci.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, _ := cmd.Flags().GetString("name")
			if name == "" {
				return cmdutil.FlagErrorf("--name is required")
			}
			return withService(cmd, func(ctx context.Context, svc *enroll.Service, db *store.DB) error {
				tok, err := svc.CreateAdminToken(ctx, name)
				if err != nil {
					if enroll.ErrorCode(err) == enroll.CodeConflict {
						return fmt.Errorf("a token named %q exists already: pick another name or revoke it first", name)
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

	list := &cobra.Command{
		Use:     "list",
		Short:   "List admin tokens (names and dates, never the tokens)",
		Example: "  oma-server token list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withService(cmd, func(ctx context.Context, svc *enroll.Service, db *store.DB) error {
				toks, err := db.ListAdminTokens(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(ios.Out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tCREATED\tLAST USED\tSTATUS")
				for _, t := range toks {
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
			})
		},
	}

	revoke := &cobra.Command{
		Use:     "revoke NAME",
		Short:   "Revoke an admin token; it is refused from then on",
		Example: "  oma-server token revoke alice",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withService(cmd, func(ctx context.Context, svc *enroll.Service, db *store.DB) error {
				if err := svc.RevokeAdminToken(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(ios.ErrOut, "Revoked admin token %q.\n", args[0])
				return nil
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
