// Package omaserver is the command tree of oma-server: serve, migrate,
// token, systemd-unit, authorized-keys, sshd-config, version and completion.
package omaserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/store"
)

// NewRootCmd builds the oma-server command tree.
func NewRootCmd(ios *cmdutil.IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "oma-server",
		Short: "The OMA side of VMA enrollment: admin API, enrollment API and tunnel endpoint",
		Long: `oma-server runs the VMA enrollment API of an OMA.

It serves two listeners: the admin listener (default 127.0.0.1:8082, token
authenticated, used by omactl) and the public listener (default :443, TLS,
only the enrollment endpoints, reachable by VMAs from the internet).

Configuration: flag > environment (OMA_<FLAG>, e.g. OMA_DB_DSN) > config file
(--config, default ` + DefaultConfigFile + `) > default.`,
		Example: `  # Start with the embedded SQLite store in /var/lib/oma-enroll
  oma-server serve --public-host oma.example.com

  # Use MariaDB
  oma-server serve --db-driver mysql --db-dsn 'oma:secret@tcp(db:3306)/oma'`,
		PersistentPreRunE: readConfig,
	}
	cmdutil.Setup(root)
	root.CompletionOptions.DisableDefaultCmd = true // cmdutil's, like omactl's and vma-enroll's
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	pf := root.PersistentFlags()
	pf.String("config", "", "YAML config file (default "+DefaultConfigFile+" when it exists)")
	pf.String("data-dir", "/var/lib/oma-enroll", "directory for the SQLite file, keys, certificate and admin token")
	pf.String("db-driver", "sqlite", "database: sqlite (embedded) or mysql (MariaDB/MySQL)")
	pf.String("db-dsn", "", "database DSN (sqlite: file path, default <data-dir>/oma.db; mysql: user:pass@tcp(host:3306)/db)")
	pf.String("log-format", "text", "log format: text or json")
	pf.String("log-level", "info", "log level: debug, info, warn or error")

	root.AddCommand(newServeCmd(ios), newMigrateCmd(ios), newTokenCmd(ios), newSystemdUnitCmd(ios), newAuthorizedKeysCmd(ios),
		newSSHDConfigCmd(ios), newRotateCmd(ios), cmdutil.NewCompletionCmd(root, ios), cmdutil.NewVersionCmd("oma-server", ios))
	cmdutil.InitHelpCmd(root, "token create")
	return root
}

// common holds the settings every subcommand shares.
type common struct {
	DataDir  string
	Driver   string
	DSN      string
	LogFmt   string
	LogLevel string
}

func commonFrom(v *viper.Viper) (common, error) {
	c := common{
		DataDir:  v.GetString("data_dir"),
		Driver:   strings.ToLower(v.GetString("db_driver")),
		DSN:      v.GetString("db_dsn"),
		LogFmt:   v.GetString("log_format"),
		LogLevel: v.GetString("log_level"),
	}
	switch c.Driver {
	case "sqlite", "mysql":
	default:
		return c, cmdutil.FlagErrorf("--db-driver %q: use sqlite or mysql", c.Driver)
	}
	if c.DataDir == "" {
		return c, cmdutil.FlagErrorf("--data-dir must not be empty")
	}
	if c.DSN == "" {
		if c.Driver == "mysql" {
			return c, cmdutil.FlagErrorf("--db-dsn is required with --db-driver mysql (e.g. 'oma:secret@tcp(127.0.0.1:3306)/oma')")
		}
		c.DSN = filepath.Join(c.DataDir, "oma.db")
	}
	switch c.LogFmt {
	case "text", "json":
	default:
		return c, cmdutil.FlagErrorf("--log-format %q: use text or json", c.LogFmt)
	}
	return c, nil
}

func (c common) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, cmdutil.FlagErrorf("--log-level %q: use debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFmt == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// openStore opens the database (creating the data directory for SQLite).
func (c common) openStore(ctx context.Context) (*store.DB, error) {
	// Everything the server writes (database, WAL, keys) is for its own
	// user only.
	syscall.Umask(0o077)
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	db, err := store.Open(ctx, c.Driver, c.DSN, store.Options{})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", c.Driver, err)
	}
	return db, nil
}
