package omactl

import (
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// DefaultWidth is the width tables fit when the terminal's is unknown
// (stdout is no terminal and COLUMNS is unset): the appliance console's.
const DefaultWidth = 80

// column is one column of a table.
type column struct {
	header string
	// wide columns are shown only with -o wide.
	wide bool
	// min > 0 lets the column be cut (with "...") down to min characters
	// when the table is wider than the terminal; 0 never cuts it.
	min int
}

// col is a column that is never cut; cut is one that may be cut to min;
// wideCol is a column shown only with -o wide.
func col(header string) column          { return column{header: header} }
func cut(header string, min int) column { return column{header: header, min: min} }
func wideCol(header string) column      { return column{header: header, wide: true} }
func (c column) headerWidth() int       { return utf8.RuneCountInString(c.header) }

// cell cuts s to w characters, the last three "..." when it was cut.
func (c column) cell(s string, w int) string {
	if utf8.RuneCountInString(s) <= w {
		return s
	}
	r := []rune(s)
	if w <= 3 {
		return string(r[:w])
	}
	return string(r[:w-3]) + "..."
}

// table collects rows and writes them as aligned columns that fit the
// terminal: the widest cuttable column loses a character at a time until
// the table fits or every cuttable column is at its minimum. With -o wide
// it shows every column (wide ones too) and cuts nothing.
//
// Adding a column is adding it to the spec and a cell to each row; the
// layout needs no other change.
type table struct {
	cols      []column
	rows      [][]string
	wide      bool
	width     int
	noHeaders bool
}

// newTable starts a table for f's output format and terminal width.
func (f *Factory) newTable(noHeaders bool, cols ...column) *table {
	return &table{cols: cols, wide: f.Config.Output == "wide", width: f.width(), noHeaders: noHeaders}
}

// row adds one row, a cell for every column of the spec (wide ones
// included); every cell is made printable and tab-free, an empty one
// shows as "-". The layout cuts cells to the terminal, not here.
func (t *table) row(cells ...string) {
	r := make([]string, len(t.cols))
	for i := range t.cols {
		c := ""
		if i < len(cells) {
			c = cells[i]
		}
		if c == "" {
			c = "-"
		}
		r[i] = strings.ReplaceAll(cleanLong(c), "\t", " ")
	}
	t.rows = append(t.rows, r)
}

// write lays the table out and writes it to w.
func (t *table) write(w io.Writer) error {
	var idx []int
	for i, c := range t.cols {
		if t.wide || !c.wide {
			idx = append(idx, i)
		}
	}
	widths := make([]int, len(idx))
	for j, i := range idx {
		if !t.noHeaders {
			widths[j] = t.cols[i].headerWidth()
		}
		for _, r := range t.rows {
			widths[j] = max(widths[j], utf8.RuneCountInString(r[i]))
		}
	}
	if !t.wide {
		total := func() int {
			n := 2 * (len(widths) - 1)
			for _, w := range widths {
				n += w
			}
			return n
		}
		for total() > t.width {
			best := -1
			for j, i := range idx {
				if m := t.cols[i].min; m > 0 && widths[j] > m && (best < 0 || widths[j] > widths[best]) {
					best = j
				}
			}
			if best < 0 {
				break // nothing left to cut: wider than the terminal
			}
			widths[best]--
		}
	}
	var b strings.Builder
	line := func(cells func(i int) string) {
		b.Reset()
		for j, i := range idx {
			s := t.cols[i].cell(cells(i), widths[j])
			b.WriteString(s)
			if j < len(idx)-1 {
				b.WriteString(strings.Repeat(" ", widths[j]-utf8.RuneCountInString(s)+2))
			}
		}
		b.WriteByte('\n')
	}
	if !t.noHeaders {
		line(func(i int) string { return t.cols[i].header })
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	for _, r := range t.rows {
		line(func(i int) string { return r[i] })
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

// width is the width tables fit: Factory.Width when set, else the
// terminal's when stdout is one, else COLUMNS, else DefaultWidth.
func (f *Factory) width() int {
	if f.Width > 0 {
		return f.Width
	}
	if w := f.IO.OutColumns(); w > 0 {
		return w
	}
	if n, err := strconv.Atoi(f.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return DefaultWidth
}

// clean makes a stored string safe for the admin's terminal: no escape
// sequences, no control characters, no tabs to break the columns.
// Cells longer than 80 bytes are cut with "..." so that a cut is visible.
func clean(s string) string {
	const max = 80
	if len(s) > max {
		return strings.ReplaceAll(enroll.Sanitize(s, max-3), "\t", " ") + "..."
	}
	return strings.ReplaceAll(enroll.Sanitize(s, max), "\t", " ")
}
