package cmdutil

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func testRoot(ios *IOStreams) *cobra.Command {
	root := &cobra.Command{Use: "prog"}
	Setup(root)
	root.PersistentFlags().StringP("output", "o", "text", "format")
	root.AddCommand(
		&cobra.Command{Use: "approve ID", Args: ExactArgs(1), RunE: func(*cobra.Command, []string) error { return nil }},
		&cobra.Command{Use: "status", Args: NoArgs, RunE: func(*cobra.Command, []string) error {
			ios.Out.Write([]byte(`{"ok":false}` + "\n"))
			return Exit(ExitFailure, errors.New("the chain is broken"))
		}},
		// A failure whose text looks like cobra's usage errors is still
		// a failure (exit 1): usage errors are known by type, not words.
		&cobra.Command{Use: "write", Args: NoArgs, RunE: func(*cobra.Command, []string) error {
			return errors.New("write /x: invalid argument; unknown flag accepts requires at least")
		}},
	)
	group := &cobra.Command{Use: "auth", Short: "groups"}
	group.AddCommand(&cobra.Command{Use: "login", Args: NoArgs, RunE: func(*cobra.Command, []string) error { return nil }})
	root.AddCommand(group)
	return root
}

// TestRunUsageErrors: our words, the failing command's help, suggestions,
// and one JSON object on stdout with -o json unless the command already
// wrote its document.
func TestRunUsageErrors(t *testing.T) {
	cases := []struct {
		args       []string
		code       int
		stderr     []string
		jsonStatus string // "" for no JSON
	}{
		{[]string{"approve"}, 2, []string{"Error: prog approve needs the argument ID (usage: prog approve ID)", "Run 'prog approve --help' for usage."}, ""},
		{[]string{"approve", "a", "b", "-o", "json"}, 2, []string{`too many arguments for prog approve: "b"`}, "usage_error"},
		{[]string{"aprove"}, 2, []string{`unknown command "aprove" for "prog"`, "Did you mean this?", "    prog approve"}, ""},
		{[]string{"approve", "-ojson", "--bogus"}, 2, []string{"unknown flag: --bogus", "Run 'prog approve --help'"}, "usage_error"},
		{[]string{"status", "extra"}, 2, []string{`prog status takes no arguments, got "extra"`, "Run 'prog status --help'"}, ""},
		{[]string{"approve", "--output"}, 2, []string{"flag needs an argument", "Run 'prog approve --help'"}, ""},
		{[]string{"write"}, 1, []string{"Error: write /x: invalid argument"}, ""},
		// An unknown subcommand of a command that only groups others, and
		// of the root (which runs nothing either).
		{[]string{"auth", "logn"}, 2, []string{`unknown command "logn" for "prog auth"`, "    prog auth login", "Run 'prog auth --help'"}, ""},
		{[]string{"bogus", "-o", "json"}, 2, []string{`unknown command "bogus" for "prog"`}, "usage_error"},
		// The command printed its own document: no second one.
		{[]string{"status", "-o", "json"}, 1, []string{"Error: the chain is broken"}, "own"},
	}
	for _, c := range cases {
		ios, _, out, errOut := Test()
		root := testRoot(ios)
		root.SetArgs(c.args)
		if code := Run(root, ios); code != c.code {
			t.Errorf("%v: exit %d, want %d", c.args, code, c.code)
		}
		for _, w := range c.stderr {
			if !strings.Contains(errOut.String(), w) {
				t.Errorf("%v: stderr lacks %q:\n%s", c.args, w, errOut)
			}
		}
		if c.jsonStatus == "" {
			if out.Len() != 0 {
				t.Errorf("%v: stdout %q, want nothing", c.args, out)
			}
			continue
		}
		if c.jsonStatus == "own" {
			if out.String() != `{"ok":false}`+"\n" {
				t.Errorf("%v: stdout %q, want only the command's document", c.args, out)
			}
			continue
		}
		var je JSONError
		if err := json.Unmarshal(out.Bytes(), &je); err != nil || je.Status != c.jsonStatus || je.ExitCode != c.code || je.Error == "" {
			t.Errorf("%v: stdout %q, want one %s object", c.args, out, c.jsonStatus)
		}
	}
}

// TestRunHelp: a command that only groups others still shows its help,
// alone or with --help (exit 0, nothing on stderr).
func TestRunHelp(t *testing.T) {
	for _, args := range [][]string{{}, {"auth"}, {"auth", "--help"}, {"--help"}, {"help", "auth"}} {
		ios, _, out, errOut := Test()
		root := testRoot(ios)
		root.SetOut(out)
		root.SetArgs(args)
		if code := Run(root, ios); code != 0 || errOut.Len() != 0 || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want 0 and the help", args, code, errOut, out)
		}
	}
}

func TestOutputFromArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"-o", "json"}, "json", true},
		{[]string{"--output=yaml"}, "yaml", true},
		{[]string{"-ojson", "x"}, "json", true},
		{[]string{"-o=json"}, "json", true},
		{[]string{"x", "--", "-o", "json"}, "", false},
		{[]string{"--other"}, "", false},
	} {
		if got, ok := outputFromArgs(c.args); got != c.want || ok != c.ok {
			t.Errorf("%v: %q %v, want %q %v", c.args, got, ok, c.want, c.ok)
		}
	}
}
