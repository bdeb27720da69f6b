package omactl

import (
	"math"
	"os"
	"runtime/debug"
)

// oneShotMemoryLimit is the heap at which a one-shot omactl collects
// garbage at all.
const oneShotMemoryLimit = 256 << 20

// gcTuned reports whether OneShotGC changed the collector's settings.
var gcTuned bool

// OneShotGC leaves garbage collection to a memory limit: omactl makes one
// request and prints it, and the garbage of a large answer (10,000 VMAs
// are megabytes of JSON) costs more to collect as the heap grows than to
// leave until the process exits (docs/benchmarks.md, row 5). GOGC or
// GOMEMLIMIT set by the user win. --watch, which runs on, goes back to
// the default (steadyGC).
func OneShotGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(oneShotMemoryLimit)
	gcTuned = true
}

// steadyGC restores the collector's defaults for a long-running command.
func steadyGC() {
	if !gcTuned {
		return
	}
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	gcTuned = false
}
