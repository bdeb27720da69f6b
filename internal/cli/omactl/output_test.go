package omactl

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

func TestEscapeControls(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":"plain"}`:            `{"a":"plain"}`,
		"{\"a\":\"del\x7f\"}":      `{"a":"del\u007f"}`,
		"{\"a\":\"c1\u0085x\"}":    `{"a":"c1\u0085x"}`,
		"{\"a\":\"bidi\u202eab\"}": `{"a":"bidi\u202eab"}`,
		`{"a":"café ✓"}`:           `{"a":"café ✓"}`,
		"{\"é\":\"\u2066\"}":       `{"é":"\u2066"}`,
	} {
		if got := string(escapeControls([]byte(in))); got != want {
			t.Errorf("escapeControls(%q) = %q, want %q", in, got, want)
		}
	}
}

// The active list's -o json prints the server's JSON indented instead of
// decoding and encoding it again: the bytes must be the same as writeJSON
// of the decoded list, control characters escaped alike.
func TestWriteRawJSONMatchesWriteJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	port := 9081
	list := []api.Connection{
		{EnrollmentID: "e1", VMAName: "vma-\u202efra\u0007-01 <b>&", ConnectionStatus: "connected", TunnelPort: &port,
			LastSeenAt: &at, ConnectedAt: &at, Labels: map[string]string{"site": "fra", "env": "prod"},
			KeySince: &at, KeyAgeSeconds: 42, KeyStatus: "due", KeyExpiresAt: &at},
		{EnrollmentID: "e2", VMAName: "vma-ham-02", ConnectionStatus: "disconnected"},
	}
	compact, err := json.Marshal(api.ConnectionList{Connections: list})
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Connections json.RawMessage }
	if err := json.Unmarshal(compact, &got); err != nil {
		t.Fatal(err)
	}
	var raw, typed bytes.Buffer
	if err := writeRawJSON(&raw, got.Connections); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(&typed, list); err != nil {
		t.Fatal(err)
	}
	if raw.String() != typed.String() {
		t.Fatalf("raw:\n%s\ntyped:\n%s", raw.String(), typed.String())
	}
	if strings.Contains(raw.String(), "\u202e") {
		t.Fatalf("a control character reached the output:\n%s", raw.String())
	}
}

// OneShotGC leaves collection to a memory limit unless the user set GOGC;
// steadyGC (for --watch) restores the default.
func TestOneShotGC(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	OneShotGC()
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Fatalf("after OneShotGC GOGC = %d, want off", p)
	}
	if l := debug.SetMemoryLimit(-1); l != oneShotMemoryLimit {
		t.Fatalf("after OneShotGC the memory limit = %d, want %d", l, oneShotMemoryLimit)
	}
	steadyGC()
	if p := debug.SetGCPercent(-1); p != 100 {
		t.Fatalf("after steadyGC GOGC = %d, want 100", p)
	}
	debug.SetGCPercent(100)
	t.Setenv("GOGC", "50")
	OneShotGC()
	if p := debug.SetGCPercent(-1); p != 100 {
		t.Fatalf("with GOGC set by the user OneShotGC changed it to %d", p)
	}
}

// writeRawJSON streams what json.Indent, escapeControls and a newline made
// in memory before: the same bytes for any valid JSON.
func FuzzWriteRawJSON(f *testing.F) {
	for _, s := range []string{
		`[]`, `{}`, `[{}]`, `{"a":[]}`, `[1,"x",true,null,{"k":"v\"\\"}]`,
		`{"connections":[{"enrollment_id":"e1","labels":{"env":"prod","site":"fra"},"tunnel_port":9081,"last_seen_at":null}]}`,
		` [ 1 , { "a" : [ ] } ] `, `"\u202e\u0007 ` + "\u202e\u0085é\x7f" + `"`, `[-1.5e+10,0]`, `"\ud83d\ude00 😀"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			t.Skip()
		}
		var want bytes.Buffer
		if err := json.Indent(&want, bytes.TrimSpace(in), "", "  "); err != nil {
			t.Fatal(err)
		}
		wantOut := append(escapeControls(want.Bytes()), '\n')
		var got bytes.Buffer
		if err := writeRawJSON(&got, in); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), wantOut) {
			t.Fatalf("input %q:\ngot  %q\nwant %q", in, got.Bytes(), wantOut)
		}
	})
}
