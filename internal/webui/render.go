package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/labels"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageNames are the templates that render a whole page (each with the layout).
var pageNames = []string{"signin", "pending", "active", "pairing", "audit", "confirm", "message", "bulk"}

// view is what every page template gets.
type view struct {
	Title        string
	Nav          string // the current nav entry
	Actor        string // empty when signed out
	CSRF         string
	Flashes      []flash
	Now          time.Time
	PendingCount int
	PollMS       int64
	Asset        string // asset version, for cache busting
	Data         any
}

func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"ago":    func(now time.Time, t any) string { return ago(now, toTime(t)) },
		"until":  func(now time.Time, t any) string { return untilText(now, toTime(t)) },
		"age":    func(d time.Duration) string { return human(d) },
		"utc":    func(t any) string { return toTime(t).UTC().Format("2006-01-02 15:04:05Z") },
		"iso":    func(t any) string { return toTime(t).UTC().Format(time.RFC3339) },
		"short":  shortID,
		"labels": enrollmentLabels,
		"codelabels": func(s string) string {
			l, _ := labels.Decode(s)
			return l.String()
		},
		"labelset": func(e enroll.Enrollment) string {
			a, _ := labels.Decode(e.Labels)
			v, _ := labels.Decode(e.VMALabels)
			return labels.Merge(v, a).String()
		},
		"label":   func(v any) string { return statusLabel(fmt.Sprint(v)) },
		"details": detailPairs,
		"deref": func(v any) any {
			switch p := v.(type) {
			case *int:
				if p == nil {
					return nil
				}
				return *p
			case *string:
				if p == nil {
					return ""
				}
				return *p
			}
			return v
		},
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// newView fills the parts of a view every page has.
func (u *UI) newView(r *http.Request, se *session, nav, title string, data any) *view {
	v := &view{Title: title, Nav: nav, Now: u.now(), PollMS: u.cfg.PollInterval.Milliseconds(), Asset: u.assets.version, Data: data}
	if se != nil {
		v.Actor, v.CSRF = se.Actor, se.CSRF
		if !background(r) {
			v.Flashes = u.sessions.takeFlashes(se.key)
		}
		if list, err := u.svc.Pending(r.Context()); err == nil {
			v.PendingCount = len(list)
		}
	}
	return v
}

// render writes page name (or, for a background refresh, only its region
// template) with status.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	t := u.pages[name]
	tmpl := "layout.html"
	if region := r.URL.Query().Get("region"); region != "" && background(r) && t.Lookup("region-"+region) != nil {
		tmpl = "region-" + region
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, tmpl, v); err != nil {
		u.log.Error("web UI template failed", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// messageData is the data of the message page.
type messageData struct {
	Text   string
	Status int
}

// message renders a page with one message (errors, refusals, not found).
func (u *UI) message(w http.ResponseWriter, r *http.Request, se *session, status int, title, text string) {
	u.render(w, r, status, "message", u.newView(r, se, "", title, messageData{Text: text, Status: status}))
}

// toTime takes a time.Time or a *time.Time (zero for nil).
func toTime(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case *time.Time:
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}

func shortID(id any) string {
	var s string
	switch v := id.(type) {
	case string:
		s = v
	case *string:
		if v != nil {
			s = *v
		}
	}
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// ago is a short relative time ("42s ago", "5m ago", "3h ago", "2d ago").
func ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		return "in " + human(-d)
	}
	return human(d) + " ago"
}

func untilText(now, t time.Time) string {
	d := t.Sub(now)
	if d <= 0 {
		return "now"
	}
	return "in " + human(d)
}

func human(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

type pair struct{ Key, Value string }

// detailPairs renders an audit event's details as sorted key/value text.
func detailPairs(m map[string]any) []pair {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]pair, 0, len(keys))
	for _, k := range keys {
		var s string
		switch v := m[k].(type) {
		case string:
			s = v
		case float64:
			if v == math.Trunc(v) && math.Abs(v) < 1e15 {
				s = fmt.Sprintf("%d", int64(v))
			} else {
				s = fmt.Sprintf("%.1f", v)
			}
		case nil:
			s = ""
		default:
			b, _ := json.Marshal(v)
			s = string(b)
		}
		out = append(out, pair{Key: k, Value: enroll.Sanitize(s, 300)})
	}
	return out
}

// assets are the embedded static files.
type assets struct {
	files   map[string][]byte
	version string
}

func loadAssets() (*assets, error) {
	a := &assets{files: map[string][]byte{}}
	h := sha256.New()
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		a.files[path.Base(p)] = b
		h.Write([]byte(p))
		h.Write(b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.version = hex.EncodeToString(h.Sum(nil))[:12]
	return a, nil
}

var contentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

func (a *assets) serve(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	b, ok := a.files[name]
	ct := contentTypes[path.Ext(name)]
	if !ok || ct == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ct)
	if r.URL.Query().Get("v") == a.version {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Write(b)
}

func (a *assets) favicon(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Write(a.files["icon.svg"])
}

// versionOf is a short hash of v's JSON: a list's version for the poll.
func versionOf(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func pendingVersion(list []enroll.Enrollment) string {
	type row struct {
		ID     string
		Status enroll.Status
		Exp    *time.Time
	}
	rows := make([]row, 0, len(list))
	for _, e := range list {
		rows = append(rows, row{e.ID, e.Status, e.ExpiresAt})
	}
	return versionOf(rows)
}

func activeVersion(list []enroll.Connection) string {
	type row struct {
		ID, Status, Remote string
		Port               *int
		Seen, Conn         *time.Time
		Key                enroll.KeyStatus
	}
	rows := make([]row, 0, len(list))
	for _, c := range list {
		var seen *time.Time
		if c.LastSeenAt != nil {
			// Keepalives move last_seen_at every few seconds; the page
			// shows it to the minute, so refresh on minutes only.
			t := c.LastSeenAt.Truncate(time.Minute)
			seen = &t
		}
		var key enroll.KeyStatus
		if c.Key != nil {
			key = c.Key.Status
		}
		rows = append(rows, row{c.EnrollmentID, c.ConnectionStatus, c.RemoteAddr, c.TunnelPort, seen, c.ConnectedAt, key})
	}
	return versionOf(rows)
}

// statusLabel is a status as words, so that no meaning is in colour alone.
func statusLabel(s string) string { return strings.ReplaceAll(s, "_", " ") }
