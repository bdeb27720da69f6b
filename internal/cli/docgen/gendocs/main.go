// Command gendocs writes the files derived from the command trees:
//
//	gendocs completions DIR   shell completion scripts (bash, zsh, fish, powershell)
//	gendocs man DIR           man pages
//	gendocs config FILE       docs/configuration.md
//
// The Makefile runs it ('make completions', 'make man', 'make docs').
package main

import (
	"fmt"
	"os"

	"github.com/oma-enroll/oma-enroll/internal/cli/docgen"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "gendocs: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: gendocs completions DIR | man DIR | config FILE")
	}
	switch args[0] {
	case "completions":
		return docgen.WriteCompletions(args[1])
	case "man":
		return docgen.WriteManPages(args[1])
	case "config":
		return os.WriteFile(args[1], docgen.ConfigurationDoc(), 0o644)
	}
	return fmt.Errorf("unknown target %q: use completions, man or config", args[0])
}
