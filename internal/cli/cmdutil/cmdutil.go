// Package cmdutil holds what the three command trees share: IO streams with
// terminal detection, the exit-code error, version information and the
// common root-command wiring.
package cmdutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Version information, stamped at build time with -ldflags -X.
var (
	Version = "dev"
	Commit  = "unknown"
	Date    = "unknown"
)

// IOStreams are the command's input and outputs. Commands never touch
// os.Stdout directly.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	InTTY, OutTTY, ErrTTY bool
	// NoColor is set by NO_COLOR or a non-terminal stderr. The programs
	// print no colours at all today; anything that adds colour must
	// check it.
	NoColor bool
	// DumbTerm is set by TERM=dumb (or no TERM): a terminal that cannot
	// clear the screen or move the cursor.
	DumbTerm bool
}

// System returns the process's streams with terminal detection.
func System() *IOStreams {
	io := &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		InTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		OutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		ErrTTY: term.IsTerminal(int(os.Stderr.Fd())),
	}
	_, noColor := os.LookupEnv("NO_COLOR")
	io.NoColor = noColor || !io.ErrTTY
	t := os.Getenv("TERM")
	io.DumbTerm = t == "" || t == "dumb"
	return io
}

// Test returns streams over buffers, all non-terminal, for tests.
func Test() (*IOStreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut, NoColor: true, DumbTerm: true}, in, out, errOut
}

// ExitError carries a process exit code with the error to print.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit wraps err with an exit code.
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// Exit codes shared by every binary.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// FlagError marks a usage problem: the root prints the usage hint and exits 2.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// FlagErrorf builds a usage error.
func FlagErrorf(format string, args ...any) error {
	return &FlagError{Err: fmt.Errorf(format, args...)}
}

// VersionString is what `version` prints.
func VersionString(binary string) string {
	return fmt.Sprintf("%s %s (commit %s, built %s, %s %s/%s)\n", binary, Version, Commit, Date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// NewVersionCmd builds the `version` subcommand.
func NewVersionCmd(binary string, ios *IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print version, commit and build date",
		Example: "  " + binary + " version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := io.WriteString(ios.Out, VersionString(binary))
			return err
		},
	}
}

// Setup applies the conventions every root command shares: errors printed
// once by Run, usage only for flag errors, flag errors exit 2.
func Setup(root *cobra.Command) {
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &FlagError{Err: err}
	})
	root.CompletionOptions.HiddenDefaultCmd = false
}

// Run executes root and turns its error into an exit code, printing the
// error on stderr (never a stack trace).
func Run(root *cobra.Command, ios *IOStreams) int {
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	var fe *FlagError
	var ee *ExitError
	switch {
	case errors.As(err, &ee):
		if ee.Err != nil {
			fmt.Fprintf(ios.ErrOut, "Error: %s\n", ee.Err)
		}
		return ee.Code
	case errors.As(err, &fe):
		fmt.Fprintf(ios.ErrOut, "Error: %s\nRun '%s --help' for usage.\n", fe.Err, root.Name())
		return ExitUsage
	default:
		// cobra's own argument-count errors are usage errors too.
		if isCobraUsageError(err) {
			fmt.Fprintf(ios.ErrOut, "Error: %s\nRun '%s --help' for usage.\n", err, root.Name())
			return ExitUsage
		}
		fmt.Fprintf(ios.ErrOut, "Error: %s\n", err)
		return ExitFailure
	}
}

func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "received ", "unknown flag", "unknown shorthand", "invalid argument"} {
		if bytes.Contains([]byte(msg), []byte(p)) {
			return true
		}
	}
	return false
}
