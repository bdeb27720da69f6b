package omactl

import (
	"context"
	"fmt"
	"strings"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// MinIDPrefix is the shortest id prefix accepted for an enrollment.
const MinIDPrefix = 8

// resolveID turns what the admin typed (a full enrollment id, a unique id
// prefix of at least 8 characters, or a VMA name) into an enrollment id.
// When a name matches several enrollments, the one in the first status of
// prefer wins; then the only one not in a final state; otherwise the error
// lists the candidates.
func (f *Factory) resolveID(ctx context.Context, c *client.Client, arg string, prefer ...enroll.Status) (string, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return "", cmdutil.FlagErrorf("give an enrollment id, a unique id prefix (8+ characters) or a VMA name")
	}
	if id, err := enroll.NormalizeID(arg); err == nil {
		return id, nil
	}
	if p := strings.ToLower(arg); len(p) >= MinIDPrefix && isIDPrefix(p) {
		list, err := c.Enrollments(ctx, client.EnrollmentFilter{IDPrefix: p})
		if err != nil {
			return "", f.explain(err)
		}
		var hits []api.Enrollment
		for _, e := range list {
			if strings.HasPrefix(e.ID, p) {
				hits = append(hits, e)
			}
		}
		switch len(hits) {
		case 1:
			return hits[0].ID, nil
		case 0:
		default:
			return "", f.ambiguous(fmt.Sprintf("id prefix %q", p), hits)
		}
	}
	list, err := c.Enrollments(ctx, client.EnrollmentFilter{VMAName: arg})
	if err != nil {
		return "", f.explain(err)
	}
	var hits []api.Enrollment
	for _, e := range list {
		if e.VMAName == arg {
			hits = append(hits, e)
		}
	}
	if len(hits) == 0 {
		return "", &notFoundError{fmt.Sprintf("no enrollment has the id, id prefix or VMA name %q: see 'omactl list --status all' (an id prefix needs at least %d characters)", clean(arg), MinIDPrefix)}
	}
	if len(hits) == 1 {
		return hits[0].ID, nil
	}
	for _, st := range prefer {
		var in []api.Enrollment
		for _, e := range hits {
			if e.Status == string(st) {
				in = append(in, e)
			}
		}
		switch len(in) {
		case 0:
			continue
		case 1:
			return in[0].ID, nil
		default:
			return "", f.ambiguous(fmt.Sprintf("VMA name %q", clean(arg)), in)
		}
	}
	var live []api.Enrollment
	for _, e := range hits {
		if !enroll.Status(e.Status).Final() {
			live = append(live, e)
		}
	}
	if len(live) == 1 {
		return live[0].ID, nil
	}
	return "", f.ambiguous(fmt.Sprintf("VMA name %q", clean(arg)), hits)
}

func isIDPrefix(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r == '-') {
			return false
		}
	}
	return true
}

func (f *Factory) ambiguous(what string, list []api.Enrollment) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s matches %d enrollments; give the enrollment id (or at least its first %d characters):", what, len(list), MinIDPrefix)
	for _, e := range list {
		fmt.Fprintf(&b, "\n  %s  %-20s  %-18s  created %s", e.ID, clean(e.VMAName), clean(e.Status), f.when(&e.CreatedAt))
	}
	return fmt.Errorf("%s", b.String())
}

// notFoundError says that no enrollment matches what the admin typed
// (revoke --ignore-not-found accepts it).
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }
