package cmdutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Annotations of the root command that Run reads.
const (
	// AnnotationOutputEnv names the environment variable that sets -o
	// (e.g. OMACTL_OUTPUT), so that a usage error found before the
	// configuration was read still answers in JSON when it asks for JSON.
	AnnotationOutputEnv = "cmdutil.output_env"
	// annotationOutput is the output format the command settled on once
	// its configuration was read (SetOutput).
	annotationOutput = "cmdutil.output"
)

// SetOutput records the output format a command settled on (flag,
// environment or config file), so that Run reports a failure as JSON on
// stdout when it is "json".
func SetOutput(cmd *cobra.Command, format string) {
	root := cmd.Root()
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[annotationOutput] = strings.ToLower(strings.TrimSpace(format))
}

// Setup applies the conventions every root command shares: errors printed
// once by Run, usage only for flag errors, flag errors exit 2, and
// --version.
func Setup(root *cobra.Command) {
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &FlagError{Err: err}
	})
	root.CompletionOptions.HiddenDefaultCmd = false
	root.Version = Version
	root.SetVersionTemplate(VersionString(root.Name()))
	root.SetUsageFunc(func(c *cobra.Command) error {
		return WriteUsage(c.OutOrStderr(), c)
	})
}

// JSONError is the one JSON document a command run with -o json prints on
// stdout when it fails (the same place its data would have gone), so that
// a script always reads exactly one document: status says which kind of
// failure (the exit code's meaning), exit_code is the process's exit code
// and error is the message also printed on stderr.
type JSONError struct {
	Status   string `json:"status"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error"`
}

// StatusOf names the meaning of the shared exit codes: "error" (1) and
// "usage_error" (2). Programs with more codes report their own statuses.
func StatusOf(code int) string {
	if code == ExitUsage {
		return "usage_error"
	}
	return "error"
}

// Run executes root and turns its error into an exit code, printing the
// error on stderr (never a stack trace). A usage error ends with the hint
// of the command that failed ("Run 'omactl approve --help' for usage.");
// an unknown command lists the likely ones. With -o json the failure is
// also one JSONError object on stdout, unless the command wrote its own
// (or anything else) there already.
func Run(root *cobra.Command, ios *IOStreams) int {
	unknown := prepare(root)
	// Commands write through ios (the factory shares it): count what
	// reaches stdout, so that a command that printed its document before
	// failing (audit verify's report, say) gets no second one.
	out := &countingWriter{w: ios.Out}
	orig := ios.Out
	ios.Out = out
	cmd, err := root.ExecuteC()
	ios.Out = orig
	if err == nil && *unknown != nil {
		// An unknown subcommand of a command that only groups others.
		cmd, err = (*unknown).cmd, (*unknown).err
	}
	if err == nil {
		return ExitOK
	}
	if cmd == nil {
		cmd = root
	}
	code, msg, hint := ExitOK, err.Error(), false
	var fe *FlagError
	var ee *ExitError
	reported := false
	switch {
	case errors.As(err, &ee):
		code, reported = ee.Code, ee.Reported
		msg = ""
		if ee.Err != nil {
			msg = ee.Err.Error()
		}
		hint = code == ExitUsage && errors.As(ee.Err, &fe)
	case errors.As(err, &fe):
		code, hint = ExitUsage, true
	default:
		code = ExitFailure
	}
	if code == ExitOK {
		return code
	}
	if !reported && out.n == 0 && wantsJSON(root, cmd) {
		writeJSON(ios.Out, JSONError{Status: StatusOf(code), ExitCode: code, Error: msg})
	}
	if msg != "" {
		fmt.Fprintf(ios.ErrOut, "Error: %s\n", msg)
	}
	if hint {
		fmt.Fprintf(ios.ErrOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeJSON(w io.Writer, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		fmt.Fprintf(w, "%s\n", b)
	}
}

func unknownCommandMessage(cmd *cobra.Command, arg string) string {
	msg := fmt.Sprintf("unknown command %q for %q", arg, cmd.CommandPath())
	if s := cmd.SuggestionsFor(arg); len(s) > 0 {
		msg += "\n\nDid you mean this?\n"
		for _, x := range s {
			msg += "    " + cmd.CommandPath() + " " + x + "\n"
		}
		msg = strings.TrimSuffix(msg, "\n")
	}
	return msg
}

// unknownCmd is an unknown subcommand found while cobra showed help.
type unknownCmd struct {
	cmd *cobra.Command
	err error
}

// prepare walks the command tree once before it runs, so that every usage
// error is a typed FlagError in our words, none recognised by its text:
// flag errors through Setup's FlagErrorFunc, argument errors through
// every command's Args (ours, NoArgs and ExactArgs; any other validator's
// error is wrapped), and an unknown subcommand either by the Args of a
// command that runs (NoArgs) or, for a command that only groups others
// (cobra shows its help instead of running it), through *unknown.
func prepare(root *cobra.Command) **unknownCmd {
	unknown := new(*unknownCmd)
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	prepared := root.Annotations["cmdutil.prepared"] != ""
	root.Annotations["cmdutil.prepared"] = "1"
	help := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		// cobra asks a command that does not run for its help, with the
		// words that followed it: words that are not flags there name a
		// subcommand that does not exist.
		if !c.Runnable() && c.HasSubCommands() && !helpRequested(c) {
			if rest := c.Flags().Args(); len(rest) > 0 {
				*unknown = &unknownCmd{cmd: c, err: &FlagError{Err: errors.New(unknownCommandMessage(c, rest[0]))}}
				return
			}
		}
		help(c, args)
	})
	if prepared {
		return unknown
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2
		}
		if c.Args == nil && c.HasSubCommands() {
			// Not cobra's legacyArgs, which reports an unknown command
			// of the root as an untyped error: the help hook above does.
			c.Args = cobra.ArbitraryArgs
		}
		if orig := c.Args; orig != nil {
			c.Args = func(cmd *cobra.Command, args []string) error {
				err := orig(cmd, args)
				var fe *FlagError
				if err == nil || errors.As(err, &fe) {
					return err
				}
				return &FlagError{Err: err}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return unknown
}

// helpRequested reports whether c was asked for its help (--help, -h).
func helpRequested(c *cobra.Command) bool {
	f := c.Flags().Lookup("help")
	return f != nil && f.Changed
}

// NoArgs accepts no arguments: a command with subcommands (or the root)
// reports an unknown command with suggestions, any other "takes no
// arguments".
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() || !cmd.HasParent() {
		return &FlagError{Err: errors.New(unknownCommandMessage(cmd, args[0]))}
	}
	return &FlagError{Err: fmt.Errorf("%s takes no arguments, got %s", cmd.CommandPath(), quoteAll(args))}
}

// ExactArgs accepts exactly n arguments, named by the command's Use line
// ("approve ID"): "omactl approve needs the argument ID (usage: omactl
// approve ID)", "too many arguments for omactl approve: "b" (usage: …)".
func ExactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		names := strings.Fields(cmd.Use)[1:]
		path := cmd.CommandPath()
		usage := strings.TrimSpace(path + " " + strings.Join(names, " "))
		switch {
		case len(args) < n:
			missing := names[min(len(args), len(names)):min(n, len(names))]
			what := "the argument " + strings.Join(missing, "")
			if len(missing) > 1 {
				what = "the arguments " + strings.Join(missing, " and ")
			}
			return &FlagError{Err: fmt.Errorf("%s needs %s (usage: %s)", path, what, usage)}
		case len(args) > n:
			return &FlagError{Err: fmt.Errorf("too many arguments for %s: %s (usage: %s)", path, quoteAll(args[n:]), usage)}
		}
		return nil
	}
}

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, " ")
}

// wantsJSON reports whether the failed command was asked for -o json: by
// the format its configuration settled on, else its flag, else the command
// line (the flag may not have been parsed), else the environment.
func wantsJSON(root, cmd *cobra.Command) bool {
	if f := root.Annotations[annotationOutput]; f != "" {
		return f == "json"
	}
	if fl := cmd.Flags().Lookup("output"); fl != nil && fl.Changed {
		return strings.EqualFold(fl.Value.String(), "json")
	}
	if v, ok := outputFromArgs(os.Args[1:]); ok {
		return strings.EqualFold(v, "json")
	}
	if env := root.Annotations[AnnotationOutputEnv]; env != "" {
		return strings.EqualFold(strings.TrimSpace(os.Getenv(env)), "json")
	}
	return false
}

// outputFromArgs finds the last -o/--output value on a command line.
func outputFromArgs(args []string) (string, bool) {
	val, found := "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return val, found
		case a == "-o" || a == "--output":
			if i+1 < len(args) {
				val, found = args[i+1], true
				i++
			}
		case strings.HasPrefix(a, "--output="):
			val, found = strings.TrimPrefix(a, "--output="), true
		case strings.HasPrefix(a, "-o="):
			val, found = strings.TrimPrefix(a, "-o="), true
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			val, found = strings.TrimPrefix(a, "-o"), true
		}
	}
	return val, found
}
