// Command vma-enroll enrolls a VMA with its OMA and runs its tunnel.
package main

import (
	"os"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/cli/vmaenroll"
)

func main() {
	ios := cmdutil.System()
	os.Exit(cmdutil.Run(vmaenroll.NewRootCmd(vmaenroll.NewFactory(ios)), ios))
}
