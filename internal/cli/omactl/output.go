package omactl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// print writes v as one JSON or YAML document, through --template, as
// its ids (-o name, -q), or calls table for people.
func (f *Factory) print(v any, table func(w io.Writer) error) error {
	if f.Template != "" {
		return f.writeTemplate(f.IO.Out, v)
	}
	switch f.Config.Output {
	case "json":
		return writeJSON(f.IO.Out, v)
	case "yaml":
		return writeYAML(f.IO.Out, v)
	case "name":
		return writeNames(f.IO.Out, v)
	default:
		return table(f.IO.Out)
	}
}

// structured reports whether stdout carries a document for scripts (JSON,
// YAML, ids or a template's output) rather than a table for people.
func (f *Factory) structured() bool { return !f.tableOutput() }

// tableOutput reports whether stdout carries a table (-o table or wide).
func (f *Factory) tableOutput() bool {
	return f.Template == "" && (f.Config.Output == "table" || f.Config.Output == "wide")
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(escapeControls(b), '\n')
	_, err = w.Write(b)
	return err
}

// writeRawJSON prints valid JSON the server sent (compact, as encoding/json
// writes it) exactly as writeJSON prints it decoded: indented by two
// spaces as json.Indent does, control characters escaped, one newline. It
// writes as it goes through a 64 KiB buffer: a list of ten thousand VMAs
// (4.7 MB) is not copied, indented, into memory first (bench row 5).
func writeRawJSON(w io.Writer, raw json.RawMessage) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	depth, open := 0, false // open: a { or [ whose first member is not written yet
	newline := func() {
		bw.WriteByte('\n')
		for range depth {
			bw.WriteString("  ")
		}
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		if open && c != ']' && c != '}' {
			open = false
			depth++
			newline()
		}
		switch c {
		case '"':
			j := i + 1
			for ; j < len(raw) && raw[j] != '"'; j++ {
				if raw[j] == '\\' {
					j++
				}
			}
			writeEscaped(bw, raw[i:min(j+1, len(raw))])
			i = j
		case '{', '[':
			open = true
			bw.WriteByte(c)
		case ',':
			bw.WriteByte(c)
			newline()
		case ':':
			bw.WriteString(": ")
		case '}', ']':
			if open {
				open = false // empty: {} or []
			} else {
				depth--
				newline()
			}
			bw.WriteByte(c)
		default:
			bw.WriteByte(c)
		}
	}
	bw.WriteByte('\n')
	return bw.Flush()
}

// writeEscaped writes a JSON string with escapeControls' rewriting.
func writeEscaped(bw *bufio.Writer, s []byte) {
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] < 0x7f {
			i++
		}
		bw.Write(s[:i])
		if s = s[i:]; len(s) == 0 {
			return
		}
		r, n := utf8.DecodeRune(s)
		if controlRune(r) {
			fmt.Fprintf(bw, `\u%04x`, r)
		} else {
			bw.Write(s[:n])
		}
		s = s[n:]
	}
}

// writeYAML renders v with the same field names and order as its JSON:
// JSON is YAML, so the JSON is parsed into a YAML node and re-emitted in
// block style.
func writeYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(escapeControls(b), &n); err != nil {
		return err
	}
	blockStyle(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	// The emitter escapes C0 and C1 controls itself but writes bidi
	// controls raw; blockStyle double-quoted every string holding one, so
	// they can be escaped here.
	_, err = w.Write(escapeControls(buf.Bytes()))
	return err
}

// controlRune reports the characters json.Marshal leaves raw although a
// terminal may act on them (and YAML refuses some in its input): DEL, the
// C1 controls (U+0080-U+009F) and the bidi controls.
func controlRune(r rune) bool {
	return r == 0x7f || (r >= 0x80 && r <= 0x9f) || unicode.Is(unicode.Bidi_Control, r)
}

// escapeControls rewrites every controlRune in JSON text, or in YAML whose
// strings holding one are double-quoted, as a \u escape: the document
// means the same (they can only occur inside strings).
func escapeControls(b []byte) []byte {
	// Every controlRune is 0x7f or starts with a byte above it: plain
	// ASCII output (the usual case) is returned after one quick scan.
	start := -1
	for i, c := range b {
		if c >= 0x7f {
			start = i
			break
		}
	}
	if start < 0 {
		return b
	}
	var out []byte
	for i := start; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if controlRune(r) {
			if out == nil {
				out = append(make([]byte, 0, len(b)+16), b[:i]...)
			}
			out = fmt.Appendf(out, `\u%04x`, r)
		} else if out != nil {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	if out == nil {
		return b
	}
	return out
}

func blockStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle | yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && (n.Value == "" || strings.IndexFunc(n.Value, controlRune) >= 0) {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// listOptions are the flags every list command has.
type listOptions struct {
	NoHeaders bool
}

func addListFlags(cmd *cobra.Command, o *listOptions) {
	cmd.Flags().BoolVar(&o.NoHeaders, "no-headers", false, "print the table without its header row (for scripts reading columns)")
}

// snapshot is one result of a list command in every output form.
type snapshot struct {
	data  any                   // what -o json and -o yaml print
	table func(io.Writer) error // the table; nil when the list is empty
	empty string                // said (on stderr) when the list is empty
}

// show prints a snapshot: one JSON or YAML document, or the table (or the
// empty message on stderr).
func (f *Factory) show(s snapshot) error {
	return f.print(s.data, func(w io.Writer) error {
		if s.table == nil {
			_, err := fmt.Fprintln(f.IO.ErrOut, s.empty)
			return err
		}
		return s.table(w)
	})
}

// cleanLong is clean with room for a whole message.
func cleanLong(s string) string {
	return enroll.Sanitize(s, 2048)
}

// when shows a time in the local zone, with the zone, and its age:
// "2025-01-02 15:04:05 CET (3m ago)".
func (f *Factory) when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return f.clock(*t) + " (" + relative(f.Now(), *t) + ")"
}

// clock is a time in the local zone with the zone's name.
func (f *Factory) clock(t time.Time) string {
	return t.In(f.Loc).Format("2006-01-02 15:04:05 MST")
}

// ago is only the relative part: "3m ago", "in 10m".
func (f *Factory) ago(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return relative(f.Now(), *t)
}

func relative(now, t time.Time) string {
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour-30*time.Second:
		s = fmt.Sprintf("%dm", int(d.Round(time.Minute)/time.Minute))
	case d < 10*time.Hour:
		m := int(d.Round(time.Minute) / time.Minute)
		s = fmt.Sprintf("%dh", m/60)
		if m%60 != 0 {
			s += fmt.Sprintf("%dm", m%60)
		}
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d.Round(time.Hour)/time.Hour))
	default:
		s = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func shortID(id string) string {
	if len(id) > MinIDPrefix {
		return id[:MinIDPrefix]
	}
	return id
}

// shortIDs returns a function that cuts ids to the shortest prefix (at
// least MinIDPrefix characters) that still tells all of ids apart, so that
// what a table shows can be typed back as an ID argument.
func shortIDs(ids []string) func(string) string {
	n := MinIDPrefix
	for {
		seen := map[string]bool{}
		dup := false
		for _, id := range ids {
			p := id[:min(n, len(id))]
			if seen[p] {
				dup = true
				break
			}
			seen[p] = true
		}
		if !dup || n >= 36 {
			break
		}
		n++
	}
	return func(id string) string { return id[:min(n, len(id))] }
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// details renders an audit event's details as sorted key=value pairs.
func details(m map[string]any) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := m[k]
		var s string
		switch x := v.(type) {
		case nil:
			continue
		case string:
			if x == "" {
				continue
			}
			s = x
			if strings.ContainsAny(s, " =") {
				s = fmt.Sprintf("%q", s)
			}
		default:
			b, _ := json.Marshal(x)
			s = string(b)
		}
		parts = append(parts, k+"="+s)
	}
	return strings.Join(parts, " ")
}
