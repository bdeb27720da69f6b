package omactl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
)

// minInterval is the shortest --interval accepted.
const minInterval = 100 * time.Millisecond

type watchOptions struct {
	Watch    bool
	Interval time.Duration
}

func addWatchFlags(cmd *cobra.Command, o *watchOptions) {
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "keep the list up to date until Ctrl-C")
	cmd.Flags().DurationVar(&o.Interval, "interval", 2*time.Second, "how often --watch asks the server")
}

func (o watchOptions) validate() error {
	if o.Interval < minInterval {
		return cmdutil.FlagErrorf("--interval %s is too short: use %s or more", o.Interval, minInterval)
	}
	return nil
}

// clearScreen moves the cursor home and clears the terminal.
const clearScreen = "\x1b[H\x1b[2J"

// watch shows fetch's snapshot every interval until ctx ends or SIGINT or
// SIGTERM arrives (which is a normal end, exit status 0). On a terminal
// (table output) it redraws the screen; otherwise it prints a snapshot only
// when it differs from the previous one: tables after an empty line, JSON
// as one document per line, YAML as documents after "---". Errors worth
// retrying (network, 429, 5xx) are shown and retried; others end the watch.
func (f *Factory) watch(ctx context.Context, title string, interval time.Duration, fetch func(context.Context) (snapshot, error)) error {
	steadyGC() // it runs on: the default collector, not the one-shot limit
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	screen := f.tableOutput() && f.IO.OutTTY && !f.IO.DumbTerm
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var lastKey, lastErr string
	shown := 0
	for {
		s, err := fetch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil && !retryable(err):
			return f.explain(err)
		case err != nil:
			msg := f.explain(err).Error()
			if screen {
				f.redraw(title, interval, func(b *bytes.Buffer) error {
					_, err := fmt.Fprintf(b, "Error: %s\n(retrying every %s)\n", msg, interval)
					return err
				})
			} else if msg != lastErr {
				fmt.Fprintf(f.IO.ErrOut, "Error: %s (retrying every %s)\n", msg, interval)
			}
			lastErr = msg
		case screen:
			lastErr = ""
			if err := f.redraw(title, interval, func(b *bytes.Buffer) error {
				if s.table == nil {
					_, err := fmt.Fprintln(b, s.empty)
					return err
				}
				return s.table(b)
			}); err != nil {
				return err
			}
		default:
			if lastErr != "" {
				fmt.Fprintln(f.IO.ErrOut, "Connected again.")
				lastErr = ""
			}
			key, err := json.Marshal(s.data)
			if err != nil {
				return err
			}
			if shown > 0 && string(key) == lastKey {
				break
			}
			lastKey = string(key)
			if err := f.showChange(s, shown); err != nil {
				return err
			}
			shown++
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// redraw clears the terminal and draws a title line and the body.
func (f *Factory) redraw(title string, interval time.Duration, body func(*bytes.Buffer) error) error {
	var b bytes.Buffer
	b.WriteString(clearScreen)
	fmt.Fprintf(&b, "Every %s: %s    %s    (Ctrl-C to stop)\n\n", interval, title, f.clock(f.Now()))
	if err := body(&b); err != nil {
		return err
	}
	_, err := f.IO.Out.Write(b.Bytes())
	return err
}

// showChange prints the n-th changed snapshot of a watch without a
// terminal.
func (f *Factory) showChange(s snapshot, n int) error {
	if f.Template != "" {
		return f.writeTemplate(f.IO.Out, s.data)
	}
	switch f.Config.Output {
	case "name":
		return writeNames(f.IO.Out, s.data)
	case "json":
		return writeJSONLine(f.IO.Out, s.data)
	case "yaml":
		if _, err := fmt.Fprintln(f.IO.Out, "---"); err != nil {
			return err
		}
		return writeYAML(f.IO.Out, s.data)
	}
	if n > 0 {
		if _, err := fmt.Fprintln(f.IO.Out); err != nil {
			return err
		}
	}
	if s.table == nil {
		_, err := fmt.Fprintln(f.IO.ErrOut, s.empty)
		return err
	}
	return s.table(f.IO.Out)
}

// retryable reports whether a watch or follow should try again after err:
// network failures, 429 and any 5xx (a server restarting may answer 500).
func retryable(err error) bool {
	return client.IsRetryable(err) || client.StatusCode(err) >= 500
}

// writeJSONLine writes v as one line of compact JSON, with the same
// escaping of terminal controls as writeJSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(escapeControls(b), '\n'))
	return err
}
