package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

func TestWriteErrorStatuses(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		err  error
		want int
		code string
	}{
		{fmt.Errorf("list: %w", context.Canceled), 503, "unavailable"},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), 503, "unavailable"},
		{enroll.Errorf(enroll.CodeWrongState, "nope"), 409, "wrong_state"},
		{fmt.Errorf("boom"), 500, "internal"},
	} {
		rec := httptest.NewRecorder()
		s.writeError(rec, httptest.NewRequest("GET", "/x", nil), tc.err)
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), `"code":"`+tc.code+`"`) {
			t.Errorf("%v: got %d %s, want %d %s", tc.err, rec.Code, rec.Body, tc.want, tc.code)
		}
		if strings.Contains(rec.Body.String(), "boom") {
			t.Errorf("an internal error's text reached the client: %s", rec.Body)
		}
	}
}
