// Command oma-server runs the OMA side of VMA enrollment.
package main

import (
	"os"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/cli/omaserver"
)

func main() {
	ios := cmdutil.System()
	os.Exit(cmdutil.Run(omaserver.NewRootCmd(ios), ios))
}
