// Command omactl is the OMA admin's tool for VMA enrollment.
package main

import (
	"os"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/cli/omactl"
)

func main() {
	omactl.OneShotGC()
	ios := cmdutil.System()
	os.Exit(cmdutil.Run(omactl.NewRootCmd(omactl.NewFactory(ios)), ios))
}
