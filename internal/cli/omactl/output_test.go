package omactl

import "testing"

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
