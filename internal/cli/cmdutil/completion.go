package cmdutil

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Shells are the shells completion scripts are made for.
func Shells() []string { return []string{"bash", "zsh", "fish", "powershell"} }

// WriteCompletion writes root's completion script for shell, with
// descriptions. The scripts ask the binary itself for candidates (cobra's
// __complete), so they do not change when flags or commands do.
func WriteCompletion(w io.Writer, root *cobra.Command, shell string) error {
	switch shell {
	case "bash":
		return root.GenBashCompletionV2(w, true)
	case "zsh":
		return root.GenZshCompletion(w)
	case "fish":
		return root.GenFishCompletion(w, true)
	case "powershell":
		return root.GenPowerShellCompletionWithDesc(w)
	}
	return FlagErrorf("unknown shell %q: use bash, zsh, fish or powershell", shell)
}

// NewCompletionCmd builds the `completion SHELL` subcommand of root.
func NewCompletionCmd(root *cobra.Command, ios *IOStreams) *cobra.Command {
	name := root.Name()
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: fmt.Sprintf(`Print the completion script of %[1]s for a shell. Load it in the current
shell, or install it where your shell looks for completions. 'make install'
installs the bash, zsh and fish scripts (they are also in completions/ of the
source tree).`, name),
		Example: fmt.Sprintf(`  # Completion in the current bash only
  source <(%[1]s completion bash)

  # For every bash user (bash-completion loads it on first use)
  %[1]s completion bash \
      > /usr/local/share/bash-completion/completions/%[1]s

  # zsh, fish and PowerShell
  %[1]s completion zsh > "${fpath[1]}/_%[1]s"
  %[1]s completion fish > ~/.config/fish/completions/%[1]s.fish
  %[1]s completion powershell | Out-String | Invoke-Expression`, name),
		Args:                  ExactArgs(1),
		ValidArgs:             Shells(),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return WriteCompletion(ios.Out, root, args[0])
		},
	}
}
