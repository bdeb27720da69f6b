package cmdutil

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// HelpWidth is the width in columns that every line of --help fits: the
// flags' descriptions are wrapped to it, and the Short, Long and Example
// texts are written within it.
const HelpWidth = 80

// Flag descriptions go beside the flags when at least besideMin columns
// are left for them, else below each flag, indented by belowIndent.
const (
	besideMin   = 30
	belowIndent = 10
)

// WriteUsage writes the usage part of c's help as cobra's default does
// (usage line, examples, subcommands, flags), but with the flags laid out
// in HelpWidth columns: cobra prints each flag's description on one line,
// however long.
func WriteUsage(w io.Writer, c *cobra.Command) error {
	var b strings.Builder
	b.WriteString("Usage:")
	if c.Runnable() {
		fmt.Fprintf(&b, "\n  %s", c.UseLine())
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "\n  %s [command]", c.CommandPath())
	}
	if len(c.Aliases) > 0 {
		fmt.Fprintf(&b, "\n\nAliases:\n  %s", c.NameAndAliases())
	}
	if c.HasExample() {
		fmt.Fprintf(&b, "\n\nExamples:\n%s", c.Example)
	}
	if c.HasAvailableSubCommands() {
		b.WriteString("\n\nAvailable Commands:")
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() || sub.Name() == "help" {
				fmt.Fprintf(&b, "\n  %-*s %s", sub.NamePadding(), sub.Name(), sub.Short)
			}
		}
	}
	if c.HasAvailableLocalFlags() {
		fmt.Fprintf(&b, "\n\nFlags:\n%s", FlagUsages(c.LocalFlags(), HelpWidth))
	}
	if c.HasAvailableInheritedFlags() {
		fmt.Fprintf(&b, "\n\nGlobal Flags:\n%s", FlagUsages(c.InheritedFlags(), HelpWidth))
	}
	if c.HasHelpSubCommands() {
		b.WriteString("\n\nAdditional help topics:")
		for _, sub := range c.Commands() {
			if sub.IsAdditionalHelpTopicCommand() {
				fmt.Fprintf(&b, "\n  %-*s %s", sub.CommandPathPadding(), sub.CommandPath(), sub.Short)
			}
		}
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "\n\nUse \"%s [command] --help\" for more information about a command.", c.CommandPath())
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// FlagUsages lists the visible flags of fs as pflag does (flag, type,
// description, default), each description wrapped at width columns beside
// its flag; when the widest flag leaves too little room (or a word does
// not fit there), every description goes on the lines below its flag.
// No trailing newline.
func FlagUsages(fs *pflag.FlagSet, width int) string {
	type entry struct{ flag, text string }
	var entries []entry
	widest := 0
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Hidden {
			return
		}
		flag, text := flagUsage(fl)
		entries = append(entries, entry{flag, text})
		widest = max(widest, columnsOf(flag))
	})
	col := widest + 3 // where pflag starts the descriptions
	beside := width-col >= besideMin
	for _, e := range entries {
		for _, word := range strings.Fields(e.text) {
			if columnsOf(word) > width-col {
				beside = false
			}
		}
	}
	var b strings.Builder
	for i, e := range entries {
		if i > 0 {
			b.WriteString("\n")
		}
		if beside {
			lines := Wrap(e.text, width-col)
			fmt.Fprintf(&b, "%s%s%s", e.flag, strings.Repeat(" ", col-columnsOf(e.flag)), strings.Join(lines, "\n"+strings.Repeat(" ", col)))
			continue
		}
		b.WriteString(e.flag)
		for _, l := range Wrap(e.text, width-belowIndent) {
			fmt.Fprintf(&b, "\n%s%s", strings.Repeat(" ", belowIndent), l)
		}
	}
	return b.String()
}

// flagUsage is pflag's line for fl split in two: the flag with its type
// ("  -o, --output string") and the description with its default.
func flagUsage(fl *pflag.Flag) (flag, text string) {
	one := pflag.NewFlagSet("", pflag.ContinueOnError)
	cp := *fl
	one.AddFlag(&cp)
	line := strings.TrimRight(one.FlagUsagesWrapped(0), "\n")
	// pflag puts three spaces between the flag and its description when
	// the flag is the widest.
	indent := len(line) - len(strings.TrimLeft(line, " "))
	i := strings.Index(line[indent:], "   ")
	if i < 0 {
		return line, ""
	}
	return line[:indent+i], strings.Join(strings.Fields(line[indent+i:]), " ")
}

// Wrap breaks text into lines of at most width columns at spaces (a
// longer word gets a line of its own), for help text made from a list.
func Wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case columnsOf(line)+1+columnsOf(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	return append(lines, line)
}

// columnsOf is the width of s on a terminal: one column a character.
func columnsOf(s string) int { return utf8.RuneCountInString(s) }

// InitHelpCmd adds cobra's `help` command to root now (Execute would add
// it later) and gives it examples: how to read the help of sub (a command
// path below root, like "token create") and the list of commands. Call it
// after the other commands are added.
func InitHelpCmd(root *cobra.Command, sub string) {
	root.InitDefaultHelpCmd()
	for _, c := range root.Commands() {
		if c.Name() != "help" {
			continue
		}
		name := root.Name()
		c.Example = fmt.Sprintf(`  # The help of %[1]s %[2]s (as %[1]s %[2]s --help)
  %[1]s help %[2]s

  # What %[1]s can do: its commands and global flags
  %[1]s help`, name, sub)
	}
}
