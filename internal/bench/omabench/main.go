// Command omabench is `make bench`: it measures oma-server against its
// floor and its peers and prints one markdown table.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/oma-enroll/oma-enroll/internal/bench"
)

func main() {
	smoke := flag.Bool("smoke", false, "a ten-second run that only checks the harness works")
	rows := flag.String("rows", "", "measure only these rows of the table, e.g. 5 or 2,7 or 8 (default all)")
	size := flag.Int("throughput-mib", 0, "MiB per figure of row 8 (default 512)")
	flag.Parse()
	cfg := bench.Defaults()
	if *smoke {
		cfg = bench.Smoke()
	}
	for _, f := range strings.FieldsFunc(*rows, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > bench.RotateRow {
			fmt.Fprintf(os.Stderr, "omabench: -rows %q: give row numbers 1 to %d, e.g. -rows 5 or -rows 2,7\n", *rows, bench.RotateRow)
			os.Exit(2)
		}
		cfg.Rows = append(cfg.Rows, n)
	}
	if *size > 0 {
		cfg.ThroughputBytes = int64(*size) << 20
	}
	cfg.MySQLDSN = os.Getenv("OMA_TEST_MYSQL_DSN")
	cfg.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	if rep != nil {
		fmt.Print(rep.Markdown())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "omabench:", err)
		os.Exit(1)
	}
}
