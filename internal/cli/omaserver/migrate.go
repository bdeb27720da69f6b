package omaserver

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/store"
)

func newMigrateCmd(ios *cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply, roll back or show database migrations",
		Long: `Manage the database schema. The migrations are embedded in the binary
(one set per dialect); serve applies them at start unless --no-migrate.`,
		Example: `  oma-server migrate status
  oma-server migrate up --db-driver mysql --db-dsn 'oma:secret@tcp(db:3306)/oma'`,
		Args: cobra.NoArgs,
	}
	run := func(action string) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			v, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			c, err := commonFrom(v)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if c.Driver == "sqlite" {
				db, err := c.openStore(ctx) // creates the data directory and file
				if err != nil {
					return err
				}
				db.Close()
			}
			switch action {
			case "up":
				err = store.MigrateUp(ctx, c.Driver, c.DSN)
			case "down":
				err = store.MigrateDown(ctx, c.Driver, c.DSN)
			}
			if err != nil {
				return fmt.Errorf("migrate %s: %w", action, err)
			}
			ver, dirty, err := store.MigrateStatus(ctx, c.Driver, c.DSN)
			if err != nil {
				return fmt.Errorf("migration status: %w", err)
			}
			state := "clean"
			if dirty {
				state = "dirty (a migration failed half-way: fix the schema by hand, then force the version)"
			}
			fmt.Fprintf(ios.Out, "schema version %d, %s\n", ver, state)
			return nil
		}
	}
	cmd.AddCommand(
		&cobra.Command{Use: "up", Short: "Apply every pending migration", Args: cobra.NoArgs,
			Example: "  oma-server migrate up", RunE: run("up")},
		&cobra.Command{Use: "down", Short: "Roll back every migration (drops all enrollment tables)", Args: cobra.NoArgs,
			Long: "Roll back every migration. This drops all enrollment tables and their data.", Example: "  oma-server migrate down", RunE: run("down")},
		&cobra.Command{Use: "status", Short: "Show the schema version", Args: cobra.NoArgs,
			Example: "  oma-server migrate status", RunE: run("status")},
	)
	return cmd
}
