package cmdutil

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// Version information, stamped at build time with -ldflags -X.
var (
	Version = "dev"
	Commit  = "unknown"
	Date    = "unknown"
)

// VersionInfo is what `version -o json` prints.
type VersionInfo struct {
	Binary    string `json:"binary" yaml:"binary"`
	Version   string `json:"version" yaml:"version"`
	Commit    string `json:"commit" yaml:"commit"`
	Date      string `json:"date" yaml:"date"`
	GoVersion string `json:"go_version" yaml:"go_version"`
	Platform  string `json:"platform" yaml:"platform"`
}

// Info returns the version information of binary.
func Info(binary string) VersionInfo {
	return VersionInfo{Binary: binary, Version: Version, Commit: Commit, Date: Date,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}

// VersionString is what `version` and `--version` print.
func VersionString(binary string) string {
	return fmt.Sprintf("%s %s (commit %s, built %s, %s %s/%s)\n", binary, Version, Commit, Date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// NewVersionCmd builds the `version` subcommand: text, or one JSON object
// with -o json (its own -o; without it, the format the program's
// environment variable asks for, see AnnotationOutputEnv).
func NewVersionCmd(binary string, ios *IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print version, commit and build date",
		Long: `Print the version of ` + binary + `, the commit it was built from, the build
date, the Go version and the platform: what a bug report or a support request
needs. --version prints the same line.

-o json prints one object with the fields binary, version, commit, date,
go_version and platform; -o yaml the same as YAML.`,
		Example: `  # One line, as --version
  ` + binary + ` version

  # Only the version number, for a script
  ` + binary + ` version -o json | jq -r .version`,
		Args: NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Its own -o, or the program's persistent one.
			out, _ := cmd.Flags().GetString("output")
			if !cmd.Flags().Changed("output") {
				// The format the program's settings chose (SetOutput),
				// else its environment variable.
				ann := cmd.Root().Annotations
				if f := ann[annotationOutput]; f != "" {
					out = f
				} else if env := ann[AnnotationOutputEnv]; env != "" && os.Getenv(env) != "" {
					out = os.Getenv(env)
				}
			}
			switch strings.ToLower(strings.TrimSpace(out)) {
			case "json":
				writeJSON(ios.Out, Info(binary))
				return nil
			case "yaml":
				b, err := yaml.Marshal(Info(binary))
				if err != nil {
					return err
				}
				_, err = ios.Out.Write(b)
				return err
			case "text", "table", "wide", "":
				_, err := fmt.Fprint(ios.Out, VersionString(binary))
				return err
			}
			return FlagErrorf("--output %q is not one of text, json, yaml", out)
		},
	}
	cmd.Flags().StringP("output", "o", "text", "output format: text, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
