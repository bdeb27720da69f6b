// Command omabench is `make bench`: it measures oma-server against its
// floor and its peers and prints one markdown table.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/oma-enroll/oma-enroll/internal/bench"
)

func main() {
	smoke := flag.Bool("smoke", false, "a ten-second run that only checks the harness works")
	flag.Parse()
	cfg := bench.Defaults()
	if *smoke {
		cfg = bench.Smoke()
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
