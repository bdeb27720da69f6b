package store

import (
	"context"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// TestListEnrollments: every filter field, and the order.
func TestListEnrollments(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *DB) {
		svc, clk := newService(t, s)
		ctx := context.Background()
		var vs []*vma
		for i, name := range []string{"beta", "alpha", "beta", "gamma"} {
			clk.Advance(1000 * 1000) // 1ms apart
			switch i {
			case 0:
				vs = append(vs, approved(t, svc, name))
			case 1, 2:
				vs = append(vs, verified(t, svc, name))
			default:
				vs = append(vs, enrolled(t, svc, name))
			}
		}
		names := func(es []enroll.Enrollment) string {
			var out []string
			for _, e := range es {
				out = append(out, e.VMAName+"/"+string(e.Status))
			}
			return strings.Join(out, " ")
		}
		// An id prefix with LIKE wildcards must match literally.
		cases := []struct {
			name string
			f    enroll.EnrollmentFilter
			want string
		}{
			{"all, oldest first", enroll.EnrollmentFilter{}, "beta/approved alpha/awaiting_approval beta/awaiting_approval gamma/pending_verification"},
			{"status", enroll.EnrollmentFilter{Statuses: []enroll.Status{enroll.StatusAwaitingApproval}}, "alpha/awaiting_approval beta/awaiting_approval"},
			{"statuses", enroll.EnrollmentFilter{Statuses: []enroll.Status{enroll.StatusApproved, enroll.StatusPendingVerification}}, "beta/approved gamma/pending_verification"},
			{"name", enroll.EnrollmentFilter{VMAName: "beta"}, "beta/approved beta/awaiting_approval"},
			{"name is exact", enroll.EnrollmentFilter{VMAName: "BETA"}, ""},
			{"name and status", enroll.EnrollmentFilter{VMAName: "beta", Statuses: []enroll.Status{enroll.StatusApproved}}, "beta/approved"},
			{"limit", enroll.EnrollmentFilter{Limit: 2}, "beta/approved alpha/awaiting_approval"},
			{"id prefix", enroll.EnrollmentFilter{IDPrefix: vs[3].id[:8]}, "gamma/pending_verification"},
			{"id prefix, upper case", enroll.EnrollmentFilter{IDPrefix: strings.ToUpper(vs[3].id[:13])}, "gamma/pending_verification"},
			{"whole id", enroll.EnrollmentFilter{IDPrefix: vs[1].id}, "alpha/awaiting_approval"},
			{"prefix % is literal", enroll.EnrollmentFilter{IDPrefix: "%"}, ""},
			{"prefix _ is literal", enroll.EnrollmentFilter{IDPrefix: "________"}, ""},
			{"prefix ! is literal", enroll.EnrollmentFilter{IDPrefix: "!"}, ""},
		}
		for _, c := range cases {
			got, err := s.ListEnrollments(ctx, c.f)
			if err != nil {
				t.Fatalf("%s: ListEnrollments: %v", c.name, err)
			}
			if names(got) != c.want {
				t.Errorf("%s: ListEnrollments = %q, want %q", c.name, names(got), c.want)
			}
		}
		pending, err := svc.Pending(ctx)
		if err != nil || names(pending) != "alpha/awaiting_approval beta/awaiting_approval" {
			t.Errorf("Pending = %q, %v", names(pending), err)
		}
		_, err = svc.Enrollments(ctx, enroll.EnrollmentFilter{Statuses: []enroll.Status{"bogus"}})
		wantCode(t, "Enrollments(bogus status)", err, enroll.CodeInvalidRequest)
	})
}
