package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// adminCall sends one admin API request with the server's token.
func (s *omaServer) adminCall(t *testing.T, method, path string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, "http://"+s.admin+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s", method, path, res.Status)
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAdminUIBulkByLabel: the pending list's bulk selection in a real
// browser: select all toggles every row, select by label picks the rows of
// one site, and one Approve for the selection shows a result per VMA, one
// of which (rejected meanwhile) is refused with 409 while the others are
// approved.
func TestAdminUIBulkByLabel(t *testing.T) {
	ctx := browser(t)
	srv := startServer(t)
	admin := "http://" + srv.admin

	var fra, muc api.PairingCodeResponse
	srv.adminCall(t, http.MethodPost, api.PathPairingCode, api.PairingCodeRequest{Uses: 2, Labels: map[string]string{"site": "fra"}}, &fra)
	srv.adminCall(t, http.MethodPost, api.PathPairingCode, api.PairingCodeRequest{Labels: map[string]string{"site": "muc"}}, &muc)
	for _, v := range []struct {
		name string
		pc   api.PairingCodeResponse
	}{{"vma-fra-1", fra}, {"vma-fra-2", fra}, {"vma-muc-1", muc}} {
		cmd := exec.Command(bin("vma-enroll"), "--oma", srv.public, "--code", v.pc.PairingCode, "--fingerprint", v.pc.OMAFingerprint,
			"--config-dir", t.TempDir(), "--name", v.name, "--timeout", "3m", "-o", "json")
		cmd.Env = testbin.Env()
		done := testbin.StartGroup(t, cmd)
		t.Cleanup(func() { testbin.KillGroup(cmd); <-done })
	}

	run := func(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := chromedp.Do(tctx, steps...); err != nil {
			fail(t, ctx, what, err)
		}
	}
	checked := func() []string {
		t.Helper()
		return value(t, ctx, "checked rows", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('input[data-select]:checked')).map(c => c.closest('tr').getAttribute('data-vma')).sort()`))
	}

	run("sign in", 20*time.Second,
		chromedp.EmulateViewport(1280, 800),
		chromedp.Navigate(admin+"/pending"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), srv.token),
		chromedp.Click(chromedp.CSS(`form[action="/signin"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-region="pending"]`)))
	run("three VMAs pending", 60*time.Second,
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('tr[data-vma]').length === 3`, chromedp.WithPollingTimeout(50*time.Second)))
	if got := value(t, ctx, "labels shown", chromedp.Text(chromedp.CSS(`tr[data-vma="vma-fra-1"] [data-labels-shown]`))); got != "site=fra" {
		t.Errorf("labels shown for vma-fra-1 = %q, want site=fra", got)
	}

	run("select all", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-select-all]`)))
	if got := strings.Join(checked(), " "); got != "vma-fra-1 vma-fra-2 vma-muc-1" {
		t.Errorf("after select all: %q", got)
	}
	run("select none", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-select-all]`)))
	if got := checked(); len(got) != 0 {
		t.Errorf("after unselect all: %v", got)
	}
	run("select by label", 10*time.Second,
		chromedp.SendKeys(chromedp.ID("bulk-selector"), "site=fra"),
		chromedp.Click(chromedp.CSS(`[data-select-labels]`)))
	if got := strings.Join(checked(), " "); got != "vma-fra-1 vma-fra-2" {
		t.Errorf("after select by site=fra: %q", got)
	}
	// Add vma-muc-1 by hand, then have it rejected by someone else before
	// the approval: its result is 409, the others are approved.
	run("tick vma-muc-1", 10*time.Second, chromedp.Click(chromedp.CSS(`tr[data-vma="vma-muc-1"] input[data-select]`)))
	var pending api.EnrollmentList
	srv.adminCall(t, http.MethodGet, api.PathPending+"?selector=site%3Dmuc", nil, &pending)
	if len(pending.Enrollments) != 1 {
		t.Fatalf("pending site=muc: %+v", pending)
	}
	srv.adminCall(t, http.MethodPost, api.PathReject+pending.Enrollments[0].ID, api.ReasonRequest{Reason: "meanwhile"}, nil)

	run("approve selected", 30*time.Second,
		chromedp.Click(chromedp.CSS(`button[data-action="bulk-approve"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-dialog[open]`)),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS(`[data-bulk-results]`)))
	results := value(t, ctx, "results", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('[data-bulk-results] tbody tr')).map(r => r.getAttribute('data-result') + ' ' + r.textContent.replace(/\s+/g, ' ').trim())`))
	ok, refused := 0, 0
	for _, r := range results {
		switch {
		case strings.HasPrefix(r, "ok ") && strings.Contains(r, "vma-fra-"):
			ok++
		case strings.HasPrefix(r, "error ") && strings.Contains(r, "409 wrong_state"):
			refused++
		default:
			t.Errorf("unexpected result row %q", r)
		}
	}
	if ok != 2 || refused != 1 {
		t.Errorf("results %q: want 2 approved and 1 refused with 409", results)
	}
	// A pre-approved code is shown prominently on the pairing-code page.
	var auto api.PairingCodeResponse
	srv.adminCall(t, http.MethodPost, api.PathPairingCode, api.PairingCodeRequest{Uses: 5, AutoApprove: true, FromCIDR: "10.1.0.0/16"}, &auto)
	run("pairing-code page", 20*time.Second,
		chromedp.Navigate(admin+"/pairing-code"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-code-id="`+auto.ID+`"][data-auto-approve]`)))
	if got := value(t, ctx, "auto row", chromedp.Text(chromedp.CSS(`tr[data-code-id="`+auto.ID+`"] td[data-label="Approval"]`))); !strings.Contains(got, "PRE-APPROVED") || !strings.Contains(got, "10.1.0.0/16") {
		t.Errorf("pre-approved code shown as %q", got)
	}

	var approved api.EnrollmentList
	srv.adminCall(t, http.MethodGet, api.PathEnrollments+"?status=approved&selector=site%3Dfra", nil, &approved)
	if len(approved.Enrollments) != 2 {
		t.Errorf("approved site=fra after the bulk approve: %d, want 2", len(approved.Enrollments))
	}
}
