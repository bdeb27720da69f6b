package omactl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// confirm asks a yes/no question on a terminal; without one (a script) it
// proceeds. A "no" ends the command with exit status 1.
func (f *Factory) confirm(question string, yes bool) error {
	if yes || !f.IO.InTTY || !f.IO.ErrTTY {
		return nil
	}
	fmt.Fprintf(f.IO.ErrOut, "%s [y/N] ", question)
	line, err := bufio.NewReader(f.IO.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return cmdutil.Exit(cmdutil.ExitFailure, errors.New("cancelled: nothing was changed"))
}
