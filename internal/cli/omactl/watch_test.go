package omactl

import (
	"bytes"
	"strings"
	"testing"
)

// JSON Lines (--watch, --follow) escape terminal controls like -o json does.
func TestJSONLineEscapesControls(t *testing.T) {
	var b bytes.Buffer
	if err := writeJSONLine(&b, map[string]string{"vma_name": "a\u202eb\u009bc\x7f"}); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	if strings.ContainsAny(got, "\u202e\u009b\x7f") || !strings.Contains(got, `\u202e`) || strings.Count(got, "\n") != 1 {
		t.Fatalf("writeJSONLine = %q", got)
	}
}
