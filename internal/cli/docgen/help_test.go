package docgen

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// helpWidth is the terminal width help must fit: every line of --help.
const helpWidth = cmdutil.HelpWidth

// TestHelp checks the help of every command of the three binaries, the
// completion, help and version commands included (hidden ones are
// skipped): each has a Short and a Long, an Example unless it only groups
// subcommands, and every line of its --help fits an 80-column terminal.
func TestHelp(t *testing.T) {
	for _, root := range Roots() {
		root.InitDefaultHelpCmd() // as Execute would
		root.InitDefaultVersionFlag()
		var out bytes.Buffer
		root.SetOut(&out)
		var walk func(c *cobra.Command)
		walk = func(c *cobra.Command) {
			if c.Hidden {
				return
			}
			path := c.CommandPath()
			if c.Short == "" {
				t.Errorf("%s: no Short", path)
			}
			if c.Long == "" {
				t.Errorf("%s: no Long", path)
			}
			group := !c.Runnable() && c.HasAvailableSubCommands()
			if c.Example == "" && !group {
				t.Errorf("%s: no Example", path)
			}
			out.Reset()
			c.InitDefaultHelpFlag() // as Execute would
			c.HelpFunc()(c, nil)
			for i, line := range strings.Split(out.String(), "\n") {
				if w := columns(line); w > helpWidth {
					t.Errorf("%s --help, line %d is %d columns, more than %d:\n%s", path, i+1, w, helpWidth, line)
				}
			}
			for _, s := range c.Commands() {
				walk(s)
			}
		}
		walk(root)
	}
}

// columns is the width of line on a terminal, tabs expanded to every
// eighth column.
func columns(line string) int {
	n := 0
	for _, r := range line {
		if r == '\t' {
			n += 8 - n%8
			continue
		}
		n++
	}
	return n
}
