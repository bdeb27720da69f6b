package vmaenroll

import (
	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

func newCompletionCmd(root *cobra.Command, ios *cmdutil.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print the completion script of vma-enroll for a shell. Load it in the current
shell, or install it where your shell looks for completions.`,
		Example: `  source <(vma-enroll completion bash)
  vma-enroll completion bash > /etc/bash_completion.d/vma-enroll
  vma-enroll completion zsh > "${fpath[1]}/_vma-enroll"
  vma-enroll completion fish > ~/.config/fish/completions/vma-enroll.fish`,
		Args:                  cobra.ExactArgs(1),
		ValidArgs:             []string{"bash", "zsh", "fish", "powershell"},
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(ios.Out, true)
			case "zsh":
				return root.GenZshCompletion(ios.Out)
			case "fish":
				return root.GenFishCompletion(ios.Out, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(ios.Out)
			}
			return cmdutil.FlagErrorf("unknown shell %q: use bash, zsh, fish or powershell", args[0])
		},
	}
}
