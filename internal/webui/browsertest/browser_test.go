package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// TestAdminUIEnrollApproveRevoke is the seed's GUI workflow in a real
// browser: sign in, make a pairing code, let a real vma-enroll use it, see
// it appear in Pending without reloading, approve it, see it Active, revoke
// it, and find all of it in the audit trail.
func TestAdminUIEnrollApproveRevoke(t *testing.T) {
	ctx := browser(t)
	srv := startServer(t)
	admin := "http://" + srv.admin
	shots := screenshots(t)
	t.Logf("screenshots in %s", shots)

	run := func(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := chromedp.Do(tctx, steps...); err != nil {
			fail(t, ctx, what, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		// Every visible form control has a label.
		unlabelled := value(t, ctx, "labels on "+name, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('main input:not([type=hidden]), main select, main textarea'))
			.filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.name || el.id)`))
		if len(unlabelled) > 0 {
			t.Errorf("%s: form controls without a label: %v", name, unlabelled)
		}
		png := value(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		return strings.TrimSpace(value(t, ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)))
	}
	location := func() string {
		t.Helper()
		return value(t, ctx, "location", chromedp.Location())
	}

	// Without a session every page leads to the sign-in form.
	run("open /pending signed out", 20*time.Second,
		chromedp.EmulateViewport(1280, 800),
		chromedp.Navigate(admin+"/pending"),
		chromedp.WaitVisible(chromedp.ID("token")))
	if loc := location(); !strings.Contains(loc, "/signin") {
		t.Fatalf("signed out, /pending went to %s, want the sign-in page", loc)
	}

	// A wrong token is refused.
	run("wrong token", 20*time.Second,
		chromedp.SendKeys(chromedp.ID("token"), "oma_wrong-token"),
		chromedp.Click(chromedp.CSS(`form[action="/signin"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("signin-error")))
	if got := text("#signin-error"); !strings.Contains(got, "not recognised") {
		t.Errorf("wrong-token message = %q", got)
	}
	shot("01-signin")

	// Sign in with the admin token.
	run("sign in", 20*time.Second,
		chromedp.SendKeys(chromedp.ID("token"), srv.token),
		chromedp.Click(chromedp.CSS(`form[action="/signin"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-region="pending"] [data-empty]`)))
	if got := text(".who strong"); got != "admin" {
		t.Errorf("signed in as %q, want admin", got)
	}

	// Generate a pairing code and read it off the page.
	run("pairing code", 20*time.Second,
		chromedp.Click(chromedp.CSS(`nav a[href="/pairing-code"]`)),
		chromedp.WaitVisible(chromedp.ID("generate")),
		chromedp.SetValue(chromedp.ID("ttl"), "30m0s"),
		chromedp.SendKeys(chromedp.ID("note"), `for the <lab> & "co"`),
		chromedp.Click(chromedp.ID("generate")),
		chromedp.WaitVisible(chromedp.ID("pairing-code")),
		// The countdown runs (set by the script from the server's clock).
		chromedp.Poll[chromedp.Void](`(document.querySelector('[data-countdown]').textContent || '').startsWith('expires in 29:')`,
			chromedp.WithPollingTimeout(10*time.Second)))
	code, fp, join := text("#pairing-code"), text("#oma-fingerprint"), text("#join-command")
	if len(code) != 14 || !strings.HasPrefix(fp, "sha256:") {
		t.Fatalf("pairing code %q, fingerprint %q", code, fp)
	}
	if want := "vma-enroll --oma " + srv.public + " --code " + code + " --fingerprint " + fp; join != want {
		t.Errorf("join command\n got %q\nwant %q", join, want)
	}
	if !value(t, ctx, "copy button", chromedp.Evaluate[bool](`!document.querySelector('button[data-copy="join-command"]').hidden`)) {
		t.Error("the copy button stays hidden with JavaScript on")
	}
	shot("02-pairing-code")

	// Open Pending, mark the document, then let a real vma-enroll use the code.
	run("open pending", 20*time.Second,
		chromedp.Click(chromedp.CSS(`nav a[href="/pending"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-region="pending"] [data-empty]`)),
		chromedp.Evaluate[chromedp.Void](`window.omaNoReload = 'still here'`))

	const name = "lab vma-01.test_a"
	cfgDir := t.TempDir()
	var stdout, stderr testbin.Buffer
	enrollCmd := exec.Command(bin("vma-enroll"), "--oma", srv.public, "--code", code, "--fingerprint", fp,
		"--config-dir", cfgDir, "--name", name, "--vma-version", "2.1.0", "--timeout", "3m", "-o", "json")
	enrollCmd.Env = testbin.Env()
	enrollCmd.Stdout, enrollCmd.Stderr = &stdout, &stderr
	if err := enrollCmd.Start(); err != nil {
		t.Fatal(err)
	}
	enrollDone := make(chan error, 1)
	go func() { enrollDone <- enrollCmd.Wait() }()
	t.Cleanup(func() {
		if enrollCmd.ProcessState == nil {
			enrollCmd.Process.Kill()
			<-enrollDone
		}
	})

	row := `tr[data-vma="` + name + `"]`
	run("VMA appears in Pending without a reload", 30*time.Second, chromedp.WaitVisible(chromedp.CSS(row)))
	if marker := value(t, ctx, "marker", chromedp.Evaluate[string](`window.omaNoReload || ''`)); marker != "still here" {
		t.Fatal("the page was reloaded; the pending list should refresh in place")
	}
	if got := text(row + ` td[data-label="Source IP"]`); got != "127.0.0.1" {
		t.Errorf("source IP = %q", got)
	}
	if got := text(`[data-count="pending"]`); got != "1" {
		t.Errorf("pending badge = %q, want 1", got)
	}
	shot("03-pending")
	run("narrow window", 20*time.Second, chromedp.EmulateViewport(390, 844))
	shot("03-pending-narrow")
	run("wide window", 20*time.Second, chromedp.EmulateViewport(1280, 800))

	// Approve with the keyboard only: type the notes, Tab to Approve, Enter;
	// the dialog opens on Cancel, Tab to its Approve, Enter.
	run("approve", 30*time.Second,
		chromedp.Focus(chromedp.CSS(row+` input[name="notes"]`)),
		chromedp.KeyEvent("fingerprint checked on the console"),
		chromedp.KeyEvent(kb.Tab),
		chromedp.Poll[chromedp.Void](`document.activeElement.getAttribute('data-action') === 'approve'`, chromedp.WithPollingTimeout(5*time.Second)),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-dialog[open]`)),
		chromedp.Poll[chromedp.Void](`document.activeElement.id === 'confirm-cancel'`, chromedp.WithPollingTimeout(5*time.Second)))
	if got := text("#confirm-title"); got != "Approve "+name+"?" {
		t.Errorf("confirm dialog title = %q", got)
	}
	shot("04-approve-confirm")
	run("confirm approve", 30*time.Second,
		chromedp.KeyEvent(kb.Tab),
		chromedp.Poll[chromedp.Void](`document.activeElement.id === 'confirm-ok'`, chromedp.WithPollingTimeout(5*time.Second)),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`.flash-ok`)))
	if got := text(".flash-ok"); !strings.Contains(got, "Approved "+name) {
		t.Errorf("flash after approve = %q", got)
	}

	select {
	case err := <-enrollDone:
		if err != nil {
			t.Fatalf("vma-enroll: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("vma-enroll did not finish within 60s of the approval\nstderr: %s", stderr.String())
	}
	var res struct {
		Status string `json:"status"`
		VMA    string `json:"vma_name"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil || res.Status != "approved" {
		t.Errorf("vma-enroll -o json = %s (%v), want status approved", stdout.String(), err)
	}
	if _, err := os.Stat(filepath.Join(cfgDir, "ssh_config")); err != nil {
		t.Errorf("vma-enroll wrote no ssh_config: %v", err)
	}

	// Active shows it with its tunnel port.
	run("active", 20*time.Second,
		chromedp.Click(chromedp.CSS(`nav a[href="/active"]`)),
		chromedp.WaitVisible(chromedp.CSS(row)))
	if got := text(row + ` [data-port]`); got != "9081" {
		t.Errorf("tunnel port = %q, want 9081", got)
	}
	if got := text(row + ` [data-status]`); got != "disconnected" {
		t.Errorf("connection status = %q, want disconnected", got)
	}
	shot("05-active")

	// Revoke, confirming in the dialog.
	run("revoke", 30*time.Second,
		chromedp.SendKeys(chromedp.CSS(row+` input[name="reason"]`), "lab teardown <test>"),
		chromedp.Click(chromedp.CSS(row+` button[data-action="revoke"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-dialog[open]`)),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS(`.flash-ok`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-region="active"] [data-empty]`)))
	if got := text(".flash-ok"); !strings.Contains(got, "Revoked "+name) {
		t.Errorf("flash after revoke = %q", got)
	}

	// The audit trail has every step, with the chain intact.
	run("audit", 20*time.Second,
		chromedp.Click(chromedp.CSS(`nav a[href="/audit"]`)),
		chromedp.WaitVisible(chromedp.ID("chain-status")))
	if got := text("#chain-status"); !strings.HasPrefix(got, "Chain verified") {
		t.Errorf("chain status = %q", got)
	}
	for _, ev := range []string{"enrollment", "verification", "approval", "revocation"} {
		sel := `tr[data-event="` + ev + `"][data-vma="` + name + `"]`
		if n := value(t, ctx, "count "+ev, chromedp.Evaluate[int](`document.querySelectorAll('`+strings.ReplaceAll(sel, `'`, `\'`)+`').length`)); n != 1 {
			t.Errorf("audit rows of %s for %s: %d, want 1", ev, name, n)
		}
	}
	if got := text(`tr[data-event="approval"] td[data-label="Actor"]`); got != "admin" {
		t.Errorf("approval actor = %q, want admin", got)
	}
	if got := text(`tr[data-event="revocation"] td[data-label="Details"]`); !strings.Contains(got, "lab teardown <test>") {
		t.Errorf("revocation details = %q, want the reason as text", got)
	}
	shot("06-audit")

	// Filter by type.
	run("audit filter", 20*time.Second,
		chromedp.SetValue(chromedp.ID("f-type"), "approval"),
		chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)))
	// The unfiltered page has an approval row too: wait for the new page.
	waitLoaded(t, ctx, "type=approval")
	run("audit filtered page", 20*time.Second, chromedp.WaitVisible(chromedp.CSS(`tr[data-event="approval"]`)))
	if others := value(t, ctx, "audit filtered", chromedp.Evaluate[int](`document.querySelectorAll('tr[data-event]:not([data-event="approval"])').length`)); others != 0 {
		t.Errorf("type filter left %d other events", others)
	}

	// Sign out: the session is gone.
	run("sign out", 20*time.Second,
		chromedp.Click(chromedp.CSS(`form.signout button`)),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Navigate(admin+"/active"),
		chromedp.WaitVisible(chromedp.ID("token")))
	if loc := location(); !strings.Contains(loc, "/signin") {
		t.Errorf("after sign-out /active went to %s", loc)
	}
}

// value runs one action that returns a value, failing the test on error.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		fail(t, ctx, what, err)
	}
	return v
}

// fail stops the test with the page's <main> for context.
func fail(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	html, _ := chromedp.Run(tctx, chromedp.OuterHTML(chromedp.CSS("main")))
	loc, _ := chromedp.Run(tctx, chromedp.Location())
	t.Fatalf("%s: %v\nat %s, page <main>:\n%s", what, err, loc, html)
}

// waitLoaded waits until the tab has loaded a page whose URL contains part
// (evaluations fail while a navigation replaces the page; they are retried).
func waitLoaded(t *testing.T, ctx context.Context, part string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.readyState === 'complete' ? location.href : ''`))
		cancel()
		if err == nil && strings.Contains(v, part) {
			return
		}
		last = fmt.Sprint(v, err)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no page with %q in its URL loaded within 20s (last: %s)", part, last)
}
