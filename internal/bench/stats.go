// Package bench is the harness behind `make bench`: it drives a real
// oma-server process over real TLS (and the service in-process, as the
// floor) and prints one markdown table. Figures on a shared 2-core machine
// are noisy, so each is measured beside its reference in the same run and
// reported as a ratio as well.
package bench

import (
	"fmt"
	"sort"
	"time"
)

// durations summarises latencies.
type durations []time.Duration

func (d durations) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append(durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p/100*float64(len(s)-1) + 0.5)
	return s[i]
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// Row is one line of the report.
type Row struct {
	Measure, Setup, Result, Reference, Ratio, Target string
}

// Report is the whole table.
type Report struct {
	Rows  []Row
	Notes []string
}

func (r *Report) add(row Row) { r.Rows = append(r.Rows, row) }

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	s := "| measure | setup | result | reference | ratio | target |\n|---|---|---|---|---|---|\n"
	for _, row := range r.Rows {
		s += fmt.Sprintf("| %s | %s | %s | %s | %s | %s |\n", row.Measure, row.Setup, row.Result, row.Reference, row.Ratio, row.Target)
	}
	for _, n := range r.Notes {
		s += "\n- " + n
	}
	if len(r.Notes) > 0 {
		s += "\n"
	}
	return s
}
