package webui

import (
	"net/http"
	"strings"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/contract"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/labels"
)

// enrollmentLabels shows an enrollment's labels: the admin's, then the
// VMA's marked "vma:".
func enrollmentLabels(e enroll.Enrollment) string {
	a, _ := labels.Decode(e.Labels)
	v, _ := labels.Decode(e.VMALabels)
	out := a.String()
	if s := v.String(); s != "" {
		if out != "" {
			out += " "
		}
		out += "vma:" + s
	}
	return out
}

// bulkData is the data of the bulk page: the confirmation (without
// JavaScript) or the result of each item.
type bulkData struct {
	Action   string // approve or reject
	Verb     string // Approve or Reject
	Field    string // notes or reason
	Selector string
	Confirm  []enroll.Enrollment
	Results  *api.BulkResponse
}

// handleBulk approves or rejects the selected pending VMAs (checked boxes,
// or with none checked those matching the label selector), each on its
// own, and shows the result of each.
func (u *UI) handleBulk(w http.ResponseWriter, r *http.Request, se *session) {
	action := r.PostForm.Get("action")
	if action == "" {
		action = r.PostForm.Get("bulk_action")
	}
	d := bulkData{Action: action, Field: "reason", Selector: strings.TrimSpace(r.PostForm.Get("selector"))}
	switch action {
	case "approve":
		d.Verb, d.Field = "Approve", "notes"
	case "reject":
		d.Verb = "Reject"
	default:
		u.fail(w, r, se, "/pending", enroll.Errorf(enroll.CodeInvalidRequest, "choose Approve selected or Reject selected"))
		return
	}
	ids := r.PostForm["id"]
	if len(ids) > contract.MaxBulkItems {
		u.fail(w, r, se, "/pending", enroll.Errorf(enroll.CodeInvalidRequest, "at most %d VMAs at once", contract.MaxBulkItems))
		return
	}
	if len(ids) == 0 {
		sel, err := labels.ParseSelector(d.Selector)
		if err != nil {
			u.fail(w, r, se, "/pending", enroll.Errorf(enroll.CodeInvalidRequest, "label selector: %s", err.Error()))
			return
		}
		if sel.Empty() {
			u.fail(w, r, se, "/pending", enroll.Errorf(enroll.CodeInvalidRequest, "select VMAs first (tick them, or give a label like site=fra)"))
			return
		}
		list, err := u.svc.Pending(r.Context())
		if err != nil {
			u.serverError(w, r, err)
			return
		}
		for i := range list {
			a, _ := labels.Decode(list[i].Labels)
			v, _ := labels.Decode(list[i].VMALabels)
			if sel.Matches(labels.Merge(v, a)) {
				ids = append(ids, list[i].ID)
			}
		}
		if len(ids) == 0 {
			u.fail(w, r, se, "/pending", enroll.Errorf(enroll.CodeNotFound, "no pending VMA has labels matching %s", enroll.Printable(d.Selector)))
			return
		}
	}
	if r.PostForm.Get("confirmed") != "1" {
		for _, id := range ids {
			if e, err := u.svc.Get(r.Context(), id); err == nil {
				d.Confirm = append(d.Confirm, *e)
			}
		}
		u.render(w, r, http.StatusOK, "bulk", u.newView(r, se, "pending", d.Verb+" selected VMAs", d))
		return
	}
	res, err := u.act.Bulk(r.Context(), action, ids, strings.TrimSpace(r.PostForm.Get(d.Field)), u.meta(r, se))
	if err != nil {
		u.fail(w, r, se, "/pending", err)
		return
	}
	d.Results = res
	u.render(w, r, http.StatusOK, "bulk", u.newView(r, se, "pending", d.Verb+" selected VMAs", d))
}
