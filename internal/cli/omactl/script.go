package omactl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

// writeNames prints the ids of what a command shows, one a line (-o name,
// -q): enrollment ids for enrollments and tunnels, event ids for the audit
// trail, the code for a pairing code.
func writeNames(w io.Writer, v any) error {
	var ids []string
	switch x := v.(type) {
	case []api.Enrollment:
		for _, e := range x {
			ids = append(ids, e.ID)
		}
	case *api.Enrollment:
		ids = append(ids, x.ID)
	case *enrollmentPage:
		ids = append(ids, x.ID)
	case []api.Connection:
		for _, c := range x {
			ids = append(ids, c.EnrollmentID)
		}
	case []api.AuditEvent:
		for _, e := range x {
			ids = append(ids, strconv.FormatInt(e.ID, 10))
		}
	case *api.PairingCodeResponse:
		ids = append(ids, x.PairingCode)
	default:
		return cmdutil.FlagErrorf("-o name: this command prints no ids; use -o json")
	}
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(clean(id))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// parseTemplate checks a --template before any server is asked.
func parseTemplate(text string) (*template.Template, error) {
	t, err := template.New("--template").Option("missingkey=zero").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, cmdutil.FlagErrorf("%v", err)
	}
	return t, nil
}

// templateFuncs are the functions a --template may call besides Go's own.
var templateFuncs = template.FuncMap{
	// json renders a value as compact JSON.
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	// join joins a list with a separator: {{join ", " .names}}.
	"join": func(sep string, v any) string {
		l, _ := v.([]any)
		s := make([]string, len(l))
		for i, x := range l {
			s[i] = fmt.Sprint(x)
		}
		return strings.Join(s, sep)
	},
	// timeago shows an RFC 3339 time as an age ("3m ago"); it is bound
	// to the command's clock when the template runs.
	"timeago": func(s string) string { return s },
	// truncate cuts a string to n characters.
	"truncate": func(n int, s string) string {
		if r := []rune(s); len(r) > n {
			return string(r[:n])
		}
		return s
	},
}

// writeTemplate renders v, as its JSON form (the fields of -o json),
// through f.Template. The result is stripped of terminal controls, as
// tables are; newlines and tabs stay.
func (f *Factory) writeTemplate(w io.Writer, v any) error {
	t, err := parseTemplate(f.Template)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var data any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		return err
	}
	now := f.Now()
	funcs := template.FuncMap{
		// timeago shows an RFC 3339 time as an age: "3m ago".
		"timeago": func(s string) string {
			tm, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return s
			}
			return relative(now, tm)
		},
	}
	var out bytes.Buffer
	if err := t.Funcs(funcs).Execute(&out, data); err != nil {
		return cmdutil.FlagErrorf("%v", err)
	}
	_, err = w.Write([]byte(strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\n' && r != '\t') || controlRune(r) {
			return '?'
		}
		return r
	}, out.String())))
	return err
}
