package vmaenroll

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// maxAttempts bounds how often a prompt re-asks after a typo.
const maxAttempts = 5

// ask prompts until check accepts the answer (or the input ends).
func (f *Factory) ask(prompt string, check func(string) error) (string, error) {
	for i := 0; i < maxAttempts; i++ {
		fmt.Fprint(f.IO.ErrOut, prompt)
		line, err := f.stdin().ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			fmt.Fprintln(f.IO.ErrOut)
			return "", cmdutil.Exit(cmdutil.ExitUsage, errors.New("no answer: input ended"))
		}
		line = strings.TrimSpace(line)
		if err := check(line); err != nil {
			fmt.Fprintf(f.IO.ErrOut, "  %v\n", err)
			continue
		}
		return line, nil
	}
	return "", cmdutil.Exit(cmdutil.ExitUsage, errors.New("too many invalid answers"))
}

// confirm asks a yes/no question; only "y" or "yes" is yes.
func (f *Factory) confirm(question string) (bool, error) {
	fmt.Fprintf(f.IO.ErrOut, "%s [y/N] ", question)
	line, err := f.stdin().ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
