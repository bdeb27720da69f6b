package omaserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

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
		Example: `  # Which schema version the database has
  oma-server migrate status

  # Apply new migrations once before restarting several instances
  oma-server migrate up --db-driver mysql --db-dsn 'oma:secret@tcp(db:3306)/oma'`,
		Args: cmdutil.NoArgs,
	}
	var yes bool
	run := func(action string) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			v, err := config(cmd)
			if err != nil {
				return err
			}
			c, err := commonFrom(v)
			if err != nil {
				return err
			}
			if action == "down" && !yes {
				if err := confirmDrop(ios, c.Driver); err != nil {
					return err
				}
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
	down := &cobra.Command{Use: "down", Short: "Roll back every migration (drops all enrollment tables)", Args: cmdutil.NoArgs,
		Long: `Roll back every migration. This drops every enrollment table with all its
data: enrollments, admin tokens and the audit trail. Take a backup first
(docs/admin.md, "Backup and restore"). On a terminal it asks you to type
"drop"; elsewhere it needs --yes. It is not a downgrade: to go back to an
older version, restore the backup and the old binaries.`,
		Example: `  # Empty a test database (on a terminal it asks you to type "drop")
  oma-server migrate down --db-driver mysql \
      --db-dsn 'oma:secret@tcp(db:3306)/oma_test'

  # The same from a script, which cannot answer
  oma-server migrate down --yes --db-driver mysql \
      --db-dsn 'oma:secret@tcp(db:3306)/oma_test'`,
		RunE: run("down")}
	down.Flags().BoolVarP(&yes, "yes", "y", false, "drop everything without asking")
	up := &cobra.Command{Use: "up", Short: "Apply every pending migration", Args: cmdutil.NoArgs,
		Long: `Apply every migration the database does not have yet, then print the schema
version. serve does this at start unless --no-migrate; run it by hand when
several instances share one MariaDB (once, with the same --config, before
restarting them one by one) or to upgrade the schema without starting
serve. A database that is up to date is left as it is. With SQLite the data
directory and the database file are created when missing.`,
		Example: `  # The SQLite database of /var/lib/oma-enroll, as the service user
  sudo -u oma-enroll oma-server migrate up

  # The MariaDB of the config file all instances use
  oma-server migrate up --config /etc/oma-enroll/oma-server.yaml`,
		RunE: run("up")}
	status := &cobra.Command{Use: "status", Short: "Show the schema version", Args: cmdutil.NoArgs,
		Long: `Print the schema version of the database and whether it is clean, without
migrating anything: "schema version 6, clean"; version 0 is a database no
migration has run on yet. "dirty" means a migration failed half-way: fix the
schema by hand before serve or migrate up can go on.`,
		Example: `  # The SQLite database of /var/lib/oma-enroll, as the service user
  sudo -u oma-enroll oma-server migrate status

  # A MariaDB database
  oma-server migrate status --db-driver mysql \
      --db-dsn 'oma:secret@tcp(db:3306)/oma'`,
		RunE: run("status")}
	cmd.AddCommand(up, down, status)
	return cmd
}

// confirmDrop asks on a terminal for "drop" before migrate down; without a
// terminal, --yes is required (a script must say so).
func confirmDrop(ios *cmdutil.IOStreams, driver string) error {
	if !ios.InTTY || !ios.ErrTTY {
		return cmdutil.FlagErrorf("migrate down drops every enrollment table with all enrollments, admin tokens and the audit trail (%s database): pass --yes if that is what you want", driver)
	}
	fmt.Fprintf(ios.ErrOut, "This drops every enrollment table of the %s database with all enrollments, admin tokens and the audit trail.\nType \"drop\" to go on: ", driver)
	line, err := bufio.NewReader(ios.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if strings.TrimSpace(line) != "drop" {
		return cmdutil.Exit(cmdutil.ExitFailure, errors.New("cancelled: nothing was changed"))
	}
	return nil
}
