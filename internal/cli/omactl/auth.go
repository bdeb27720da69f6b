package omactl

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// authStatus is what 'omactl auth status' reports (-o json prints it).
type authStatus struct {
	Server       string `json:"server"`
	ServerSource string `json:"server_source"`
	// TokenSource is where the token came from: "--token", "OMACTL_TOKEN",
	// "config file" (a token key), or "token file" (TokenFile).
	TokenSource string `json:"token_source"`
	TokenFile   string `json:"token_file,omitempty"`
	// TokenFileSource is where the token file's name came from.
	TokenFileSource string `json:"token_file_source,omitempty"`
	ConfigFile      string `json:"config_file"`
	// TokenName is the name the server knows the token by (the actor in
	// the audit trail); empty when the server could not be asked.
	TokenName string `json:"token_name"`
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
}

func newAuthCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Show how omactl authenticates to oma-server",
		Long:  `Commands about the admin token omactl uses.`,
		Example: `  omactl auth status
  omactl auth status -o json`,
		Args: cmdutil.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the server, where the admin token came from and its name",
		Long: `Show which oma-server omactl talks to, where the admin token came from
(--token, OMACTL_TOKEN, the config file, or a token file and where that file's
name came from) and the name the server knows the token by: the actor that
approvals, rejections and revocations record in the audit trail.

Exits with status 1 when there is no token or the server refuses or cannot be
reached, saying why.`,
		Example: `  omactl auth status
  OMACTL_TOKEN_FILE=./admin.token omactl auth status
  omactl auth status -o json | jq -r .token_name`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAuthStatus(ctxOf(cmd), f)
		},
	})
	return cmd
}

func runAuthStatus(ctx context.Context, f *Factory) error {
	cfg := f.Config
	st := authStatus{Server: cfg.Server, ServerSource: cfg.Sources["server"], ConfigFile: cfg.File}
	if cfg.Token != "" {
		st.TokenSource = cfg.Sources["token"]
	} else {
		st.TokenSource, st.TokenFile, st.TokenFileSource = "token file", cfg.TokenFile, cfg.Sources["token_file"]
	}
	var failure error
	if c, err := f.Client(); err != nil {
		failure = err
	} else if who, err := c.Whoami(ctx); err != nil {
		failure = f.explain(err)
	} else {
		st.TokenName, st.OK = who.TokenName, true
	}
	if failure != nil {
		st.Error = failure.Error()
	}
	err := f.print(&st, func(w io.Writer) error {
		from := st.TokenSource
		if st.TokenFile != "" {
			from = fmt.Sprintf("the file %s (named by %s)", clean(st.TokenFile), st.TokenFileSource)
		}
		cf := st.ConfigFile
		if cf == "" {
			cf = "none"
		}
		name := clean(st.TokenName)
		if !st.OK {
			name = "unknown (not logged in)"
		}
		if st.OK {
			fmt.Fprintf(w, "Logged in to %s as %s.\n", clean(st.Server), name)
		} else {
			fmt.Fprintf(w, "Not logged in to %s.\n", clean(st.Server))
		}
		writeLabelled(w, [][2]string{
			{"Server", clean(st.Server) + " (from " + st.ServerSource + ")"},
			{"Token", "from " + from},
			{"Token name", name},
			{"Config file", clean(cf)},
		})
		return nil
	})
	if err != nil {
		return err
	}
	if failure != nil {
		return cmdutil.Exit(cmdutil.ExitFailure, failure)
	}
	return nil
}

// configView is what 'omactl config view' prints with -o json.
type configView struct {
	ConfigFile string          `json:"config_file"`
	Settings   []configSetting `json:"settings"`
}

type configSetting struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
	Env    string `json:"env"`
	Flag   string `json:"flag"`
}

func newConfigCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show omactl's settings",
		Long:  `Commands about omactl's settings (flags, OMACTL_* variables, the config file).`,
		Example: `  omactl config view
  omactl config view -o yaml`,
		Args: cmdutil.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "view",
		Short: "Show the settings in effect and where each came from",
		Long: `Show every setting in effect (server, token, token_file, output,
fingerprint) and where it came from: a flag, an OMACTL_* variable, the config
file, or the default. A token is never shown, only whether one is set.
The keys are those of the config file.`,
		Example: `  omactl config view
  omactl --config ./omactl.yaml config view
  omactl config view -o json |
      jq -r '.settings[] | select(.key == "server") | .value'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConfigView(f)
		},
	})
	return cmd
}

func runConfigView(f *Factory) error {
	cfg := f.Config
	values := map[string]string{
		"server": cfg.Server, "token_file": cfg.TokenFile, "output": cfg.Output, "fingerprint": cfg.Fingerprint,
	}
	if cfg.Token != "" {
		values["token"] = "(set, hidden)"
	}
	v := configView{ConfigFile: cfg.File, Settings: []configSetting{}}
	for _, s := range settings {
		v.Settings = append(v.Settings, configSetting{Key: s.Key, Value: values[s.Key], Source: cfg.Sources[s.Key], Env: s.Env, Flag: "--" + s.Flag})
	}
	return f.print(&v, func(w io.Writer) error {
		cf := v.ConfigFile
		if cf == "" {
			cf = "none"
		}
		fmt.Fprintf(w, "Config file: %s\n\n", clean(cf))
		t := f.newTable(false, col("KEY"), cut("VALUE", 20), col("FROM"))
		for _, s := range v.Settings {
			t.row(s.Key, s.Value, s.Source)
		}
		return t.write(w)
	})
}
