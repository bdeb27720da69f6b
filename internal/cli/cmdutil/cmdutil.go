// Package cmdutil holds what the three command trees share: IO streams with
// terminal detection, the exit-code error, version information and the
// common root-command wiring.
package cmdutil

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
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
	// ErrWidth returns the width in columns of the terminal on stderr, or
	// 0 when it is unknown (not a terminal, or the size cannot be read).
	// Nil means unknown. It is asked each time, so a resized window counts.
	ErrWidth func() int
	// OutWidth is ErrWidth for stdout: the terminal's width in columns, 0
	// when unknown. Nil means unknown.
	OutWidth func() int
}

// ErrColumns is the width of the terminal on stderr, 0 when unknown.
func (s *IOStreams) ErrColumns() int {
	if s == nil || s.ErrWidth == nil || !s.ErrTTY {
		return 0
	}
	return max(s.ErrWidth(), 0)
}

// OutColumns is the width of the terminal on stdout, 0 when unknown.
func (s *IOStreams) OutColumns() int {
	if s == nil || s.OutWidth == nil || !s.OutTTY {
		return 0
	}
	return max(s.OutWidth(), 0)
}

// System returns the process's streams with terminal detection.
func System() *IOStreams {
	io := &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		InTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		OutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		ErrTTY: term.IsTerminal(int(os.Stderr.Fd())),
	}
	io.ErrWidth = func() int { return termWidth(os.Stderr) }
	io.OutWidth = func() int { return termWidth(os.Stdout) }
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
	// Reported says the command already wrote its -o json document for
	// this failure on stdout: Run then prints only the message on stderr.
	Reported bool
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

// Explained returns an error that reads msg (what happened and what to do
// next, for a person) and unwraps to err, so that its code (enroll.Code,
// client.APIError) still decides the exit status.
func Explained(msg string, err error) error { return &explainedError{msg: msg, err: err} }

type explainedError struct {
	msg string
	err error
}

func (e *explainedError) Error() string { return e.msg }
func (e *explainedError) Unwrap() error { return e.err }

// FlagError marks a usage problem: the root prints the usage hint and exits 2.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// FlagErrorf builds a usage error.
func FlagErrorf(format string, args ...any) error {
	return &FlagError{Err: fmt.Errorf(format, args...)}
}

// termWidth is the width in columns of the terminal f is, 0 when unknown.
func termWidth(f *os.File) int {
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return w
}
