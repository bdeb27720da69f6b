package api

import (
	"net/http"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// TestHTTPStatusCoversEveryCode: every code has its own status; only
// "internal" (and an unknown code) is 500.
func TestHTTPStatusCoversEveryCode(t *testing.T) {
	for _, c := range enroll.Codes() {
		got := HTTPStatus(c)
		if (got == http.StatusInternalServerError) != (c == enroll.CodeInternal) {
			t.Errorf("HTTPStatus(%q) = %d", c, got)
		}
	}
	if got := HTTPStatus("no_such_code"); got != http.StatusInternalServerError {
		t.Errorf("HTTPStatus(unknown) = %d, want 500", got)
	}
}
