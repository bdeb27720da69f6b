package omactl

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// running is an omactl command running in the background.
type running struct {
	out, errOut *testbin.Buffer
	cancel      context.CancelFunc
	done        chan int
}

// startCmd runs omactl against oma (its admin listener and token) until
// stop; tty makes stdout a terminal that can clear the screen.
func startCmd(t *testing.T, oma *omatest.OMA, tty bool, args ...string) *running {
	t.Helper()
	r := &running{out: &testbin.Buffer{}, errOut: &testbin.Buffer{}, done: make(chan int, 1)}
	ios := &cmdutil.IOStreams{In: strings.NewReader(""), Out: r.out, ErrOut: r.errOut, OutTTY: tty, NoColor: true, DumbTerm: !tty}
	f := NewFactory(ios)
	f.ConfigFile = ""
	root := NewRootCmd(f)
	root.SetArgs(append([]string{"--server", oma.AdminURL(), "--token", oma.Token}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		err := root.ExecuteContext(ctx)
		if err != nil {
			r.errOut.Write([]byte("Error: " + err.Error() + "\n"))
			r.done <- 1
			return
		}
		r.done <- 0
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop ends the command like Ctrl-C does and returns its exit status.
func (r *running) stop() int {
	r.cancel()
	select {
	case code := <-r.done:
		r.done <- code
		return code
	case <-time.After(10 * time.Second):
		return -1
	}
}

// waitFor waits until cond holds for stdout.
func (r *running) waitFor(t *testing.T, what string, cond func(stdout string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond(r.out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stdout:\n%s\nstderr:\n%s", what, r.out.String(), r.errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *running) waitErr(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(r.errOut.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q on stderr:\n%s", want, r.errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runReal runs omactl once against oma.
func runReal(t *testing.T, oma *omatest.OMA, args ...string) result {
	t.Helper()
	ios, _, out, errOut := cmdutil.Test()
	f := NewFactory(ios)
	f.ConfigFile = ""
	root := NewRootCmd(f)
	root.SetArgs(append([]string{"--server", oma.AdminURL(), "--token", oma.Token}, args...))
	code := cmdutil.Run(root, ios)
	return result{out.String(), errOut.String(), code}
}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestNoHeaders(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	id := oma.Enroll("vma-a")
	oma.Approve(id)
	oma.Enroll("vma-b")
	for _, args := range [][]string{{"pending"}, {"active"}, {"audit"}} {
		with := runReal(t, oma, args...)
		without := runReal(t, oma, append(args, "--no-headers")...)
		mustOK(t, with)
		mustOK(t, without)
		wl, nl := lines(with.stdout), lines(without.stdout)
		if len(wl) < 2 || !strings.HasPrefix(wl[0], "ID ") || len(nl) != len(wl)-1 || strings.HasPrefix(nl[0], "ID ") {
			t.Errorf("%v --no-headers:\n%s\nwithout it:\n%s", args, without.stdout, with.stdout)
		}
		// JSON ignores --no-headers.
		j := runReal(t, oma, append(args, "--no-headers", "-o", "json")...)
		var list []map[string]any
		if err := json.Unmarshal([]byte(j.stdout), &list); err != nil || len(list) == 0 {
			t.Errorf("%v --no-headers -o json = %q: %v", args, j.stdout, err)
		}
	}
}

func TestPendingWatch(t *testing.T) {
	t.Run("json lines", func(t *testing.T) {
		oma := omatest.Start(t, omatest.Options{})
		r := startCmd(t, oma, false, "pending", "--watch", "--interval", "100ms", "-o", "json")
		r.waitFor(t, "the empty list", func(s string) bool { return s == "[]\n" })
		id := oma.Enroll("vma-a")
		r.waitFor(t, "vma-a", func(s string) bool { return len(lines(s)) == 2 })
		oma.Approve(id)
		r.waitFor(t, "the empty list again", func(s string) bool { return len(lines(s)) == 3 })
		time.Sleep(300 * time.Millisecond) // a few unchanged rounds print nothing
		if code := r.stop(); code != 0 {
			t.Fatalf("exit %d after the interrupt\n%s", code, r.errOut.String())
		}
		ls := lines(r.out.String())
		var mid []api.Enrollment
		if len(ls) != 3 || ls[0] != "[]" || ls[2] != "[]" || json.Unmarshal([]byte(ls[1]), &mid) != nil || len(mid) != 1 || mid[0].VMAName != "vma-a" {
			t.Fatalf("watch printed:\n%s", r.out.String())
		}
	})
	t.Run("table without a terminal", func(t *testing.T) {
		oma := omatest.Start(t, omatest.Options{})
		oma.Enroll("vma-a")
		r := startCmd(t, oma, false, "pending", "--watch", "--interval", "100ms")
		r.waitFor(t, "vma-a", func(s string) bool { return strings.Contains(s, "vma-a") })
		oma.Enroll("vma-b")
		r.waitFor(t, "vma-b", func(s string) bool { return strings.Contains(s, "vma-b") })
		time.Sleep(300 * time.Millisecond)
		r.stop()
		// Two tables, separated by an empty line, and no screen control.
		got := r.out.String()
		if strings.Count(got, "ID ") != 2 || !strings.Contains(got, "\n\nID ") || strings.Contains(got, "\x1b") {
			t.Fatalf("watch printed:\n%q", got)
		}
	})
	t.Run("terminal", func(t *testing.T) {
		oma := omatest.Start(t, omatest.Options{})
		r := startCmd(t, oma, true, "pending", "--watch", "--interval", "100ms")
		r.waitFor(t, "two redraws", func(s string) bool { return strings.Count(s, clearScreen) >= 2 })
		oma.Enroll("vma-a")
		r.waitFor(t, "vma-a", func(s string) bool { return strings.Contains(s, "vma-a") })
		r.stop()
		got := r.out.String()
		if !strings.Contains(got, "Every 100ms: omactl pending") || !strings.Contains(got, "No VMA is awaiting approval.") {
			t.Fatalf("screen:\n%q", got)
		}
	})
	t.Run("server restarts", func(t *testing.T) {
		oma := omatest.Start(t, omatest.Options{})
		r := startCmd(t, oma, false, "pending", "--watch", "--interval", "100ms", "-o", "json")
		r.waitFor(t, "the empty list", func(s string) bool { return s == "[]\n" })
		oma.Stop()
		r.waitErr(t, "cannot reach oma-server")
		oma.Restart(0)
		oma.Enroll("vma-a")
		r.waitFor(t, "vma-a", func(s string) bool { return strings.Contains(s, "vma-a") })
		r.waitErr(t, "Connected again.")
		if code := r.stop(); code != 0 {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("bad token ends it", func(t *testing.T) {
		oma := omatest.Start(t, omatest.Options{})
		r := runReal(t, oma, "--token", "wrong", "pending", "--watch", "--interval", "100ms")
		if r.code != 1 || !strings.Contains(r.stderr, "admin token was refused") {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("interval", func(t *testing.T) {
		oma := omatest.Start(t, omatest.Options{})
		if r := runReal(t, oma, "pending", "--watch", "--interval", "1ms"); r.code != 2 {
			t.Fatalf("--interval 1ms: exit %d", r.code)
		}
	})
}

func TestAuditFollow(t *testing.T) {
	t.Run("json lines", func(t *testing.T) {
		oma := omatest.Start(t, omatest.Options{})
		oma.Code() // event 1
		r := startCmd(t, oma, false, "audit", "--follow", "--interval", "100ms", "-o", "json")
		r.waitFor(t, "the first event", func(s string) bool { return len(lines(s)) == 1 })
		id := oma.Enroll("vma-a") // pairing code, enrollment, verification
		oma.Approve(id)
		r.waitFor(t, "five events", func(s string) bool { return len(lines(s)) == 5 })
		time.Sleep(300 * time.Millisecond)
		if code := r.stop(); code != 0 {
			t.Fatalf("exit %d\n%s", code, r.errOut.String())
		}
		var types []string
		var last int64
		for _, l := range lines(r.out.String()) {
			var ev api.AuditEvent
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("not one JSON object per line: %v\n%s", err, r.out.String())
			}
			if ev.ID <= last {
				t.Fatalf("ids not increasing (repeated event?):\n%s", r.out.String())
			}
			last = ev.ID
			types = append(types, ev.EventType)
		}
		if want := "pairing_code_generated pairing_code_generated enrollment verification approval"; strings.Join(types, " ") != want {
			t.Fatalf("event types %v, want %s", types, want)
		}
	})
	t.Run("table and filters", func(t *testing.T) {
		oma := omatest.Start(t, omatest.Options{})
		r := startCmd(t, oma, false, "audit", "-f", "--interval", "100ms", "--type", "approval")
		r.waitErr(t, "waiting for new ones")
		oma.Approve(oma.Enroll("vma-a"))
		r.waitFor(t, "the approval", func(s string) bool { return strings.Contains(s, "vma-a") })
		oma.Approve(oma.Enroll("vma-b"))
		r.waitFor(t, "the second approval", func(s string) bool { return strings.Contains(s, "vma-b") })
		r.stop()
		got := r.out.String()
		if strings.Count(got, "ID ") != 1 || len(lines(got)) != 3 || strings.Contains(got, "enrollment ") {
			t.Fatalf("follow printed:\n%s", got)
		}
	})
	t.Run("until", func(t *testing.T) {
		oma := omatest.Start(t, omatest.Options{})
		if r := runReal(t, oma, "audit", "--follow", "--until", "1h"); r.code != 2 {
			t.Fatalf("--follow --until: exit %d", r.code)
		}
	})
}

func TestCompleteIDs(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	waiting := oma.Enroll("vma-waiting")
	approved := oma.Enroll("vma-approved")
	oma.Approve(approved)

	complete := func(server string, args ...string) result {
		t.Helper()
		ios, _, out, errOut := cmdutil.Test()
		f := NewFactory(ios)
		f.ConfigFile = ""
		f.CompletionTimeout = 500 * time.Millisecond
		root := NewRootCmd(f)
		root.SetArgs(append([]string{"__complete", "--server", server, "--token", oma.Token}, args...))
		code := cmdutil.Run(root, ios)
		return result{out.String(), errOut.String(), code}
	}
	candidates := func(r result) []string {
		var out []string
		for _, l := range lines(r.stdout) {
			if strings.HasPrefix(l, ":") {
				continue
			}
			v, _, _ := strings.Cut(l, "\t")
			out = append(out, v)
		}
		return out
	}
	r := complete(oma.AdminURL(), "approve", "")
	if got := candidates(r); r.code != 0 || strings.Join(got, " ") != "vma-waiting "+waiting {
		t.Fatalf("approve candidates %v (exit %d)\n%s", got, r.code, r.stdout)
	}
	if !strings.Contains(r.stdout, "vma-waiting\tawaiting_approval, enrollment "+waiting[:8]) || !strings.HasSuffix(r.stdout, ":4\n") {
		t.Fatalf("approve completion:\n%s", r.stdout)
	}
	if got := candidates(complete(oma.AdminURL(), "revoke", "vma")); strings.Join(got, " ") != "vma-approved" {
		t.Fatalf("revoke candidates for \"vma\": %v", got)
	}
	if got := candidates(complete(oma.AdminURL(), "reject", waiting[:4])); strings.Join(got, " ") != waiting {
		t.Fatalf("reject candidates for an id prefix: %v", got)
	}
	if got := candidates(complete(oma.AdminURL(), "approve", "vma-waiting", "")); len(got) != 0 {
		t.Fatalf("a second argument was offered %v", got)
	}

	// Offline, refused or slow: nothing, quietly, and quickly.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept, never answer
		}
	}()
	for name, server := range map[string]string{"offline": "http://127.0.0.1:1", "hanging": "http://" + hang.Addr().String()} {
		start := time.Now()
		r := complete(server, "approve", "")
		if r.code != 0 || len(candidates(r)) != 0 || strings.Contains(r.stdout, "Error") || time.Since(start) > 5*time.Second {
			t.Errorf("%s server: exit %d after %s\nstdout %q\nstderr %q", name, r.code, time.Since(start), r.stdout, r.stderr)
		}
	}
	ios, _, out, _ := cmdutil.Test()
	f := NewFactory(ios)
	f.ConfigFile = ""
	root := NewRootCmd(f)
	root.SetArgs([]string{"__complete", "--server", oma.AdminURL(), "--token", "wrong", "approve", ""})
	if code := cmdutil.Run(root, ios); code != 0 || len(lines(out.String())) != 1 {
		t.Fatalf("refused token: exit %d\n%s", code, out.String())
	}
}

// TestConfigFileDrivesCommands proves that settings from the default
// config file reach a real command: the server address and a token file
// relative to the config file.
func TestConfigFileDrivesCommands(t *testing.T) {
	oma := omatest.Start(t, omatest.Options{})
	oma.Enroll("vma-a")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "admin.token"), []byte(oma.Token+"\n"), 0o600)
	cfgFile := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgFile, []byte("server: "+oma.AdminURL()+"\ntoken-file: admin.token\noutput: json\n"), 0o600)

	ios, _, out, errOut := cmdutil.Test()
	f := NewFactory(ios)
	f.ConfigFile = cfgFile
	root := NewRootCmd(f)
	root.SetArgs([]string{"pending"})
	if code := cmdutil.Run(root, ios); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	var list []api.Enrollment
	if err := json.Unmarshal(out.Bytes(), &list); err != nil || len(list) != 1 || list[0].VMAName != "vma-a" {
		t.Fatalf("pending with the config file = %q: %v", out.String(), err)
	}
	if f.Config.File != cfgFile || f.Config.TokenFile != filepath.Join(dir, "admin.token") {
		t.Fatalf("config = %+v", f.Config)
	}
}
