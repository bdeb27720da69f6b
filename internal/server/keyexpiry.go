package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// keyStatusSet is the key_status filter of the active list (empty: all).
type keyStatusSet map[string]bool

func (k keyStatusSet) has(s string) bool { return len(k) == 0 || k[s] }

// keyStatusesOf reads ?key_status=due,overdue (repeatable).
func keyStatusesOf(r *http.Request) (keyStatusSet, error) {
	out := keyStatusSet{}
	for _, v := range r.URL.Query()["key_status"] {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			ok := false
			for _, st := range enroll.KeyStatuses {
				ok = ok || p == string(st)
			}
			if !ok {
				return nil, badRequest("key_status %q: use ok, due, overdue or expired (comma-separated)", enroll.Printable(enroll.Sanitize(p, 32)))
			}
			out[p] = true
		}
	}
	return out, nil
}

// addKeyStandings fills the key fields of the approved enrollments of out
// (one query for all of them).
func (s *Server) addKeyStandings(ctx context.Context, list []enroll.Enrollment, out []api.Enrollment) error {
	st, err := s.svc.KeyStandings(ctx, list)
	if err != nil {
		return err
	}
	for i := range out {
		k, ok := st[out[i].ID]
		if !ok {
			continue
		}
		since, age := k.Since, int64(k.Age.Seconds())
		out[i].KeySince, out[i].KeyAgeSeconds, out[i].KeyStatus = &since, &age, string(k.Status)
		out[i].KeyRotateAfter, out[i].KeyExpiresAt, out[i].KeyRefusedAfter = k.RotateAfter, k.ExpiresAt, k.RefusedAfter
	}
	return nil
}
