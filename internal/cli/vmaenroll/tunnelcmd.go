package vmaenroll

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/tunnel"
)

func newTunnelCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "tunnel",
		Short: "Run the tunnel to the OMA",
		Long: `Run this VMA's tunnel to the OMA in the foreground, with the configuration
that enrollment wrote into --config-dir.

For now this runs the system's OpenSSH client:

  ssh -F <config-dir>/ssh_config -N oma

which connects with the enrolled key, checks the OMA's pinned host key
(StrictHostKeyChecking yes), opens only the allowed forwards and exits when
one of them fails. Reconnecting is left to systemd: vma-tunnel.service
restarts it (Restart=always). A built-in tunnel with its own reconnect and
backoff comes in a later version.`,
		Example: `  vma-enroll tunnel
  vma-enroll tunnel --config-dir /etc/vma-enroll
  systemctl enable --now vma-tunnel   # after copying vma-tunnel.service`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Root())
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(cfg.ConfigDir)
			if err != nil {
				return err
			}
			conf := filepath.Join(dir, tunnel.FileSSHConfig)
			if _, err := os.Stat(conf); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s does not exist: this VMA is not enrolled yet (run vma-enroll first), or pass --config-dir", conf)
			}
			ssh, err := exec.LookPath("ssh")
			if err != nil {
				return fmt.Errorf("the OpenSSH client (ssh) is not installed: install openssh-client")
			}
			fmt.Fprintf(f.IO.ErrOut, "Running: %s -F %s -N %s\n", ssh, conf, tunnel.SSHHostAlias)
			// SIGINT/SIGTERM to vma-enroll end ssh too, gracefully.
			ctx, stop := signal.NotifyContext(ctxOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c := exec.CommandContext(ctx, ssh, "-F", conf, "-N", tunnel.SSHHostAlias)
			c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
			c.WaitDelay = 5 * time.Second
			c.Stdin, c.Stdout, c.Stderr = nil, f.IO.Out, f.IO.ErrOut
			if err := c.Run(); err != nil {
				if ctx.Err() != nil {
					return nil // stopped on request
				}
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("the tunnel ended: ssh exited with status %d (see its messages above)", ee.ExitCode()))
				}
				return err
			}
			return nil
		},
	}
}
