package omaserver

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/store"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// runOMA runs oma-server in-process with args and returns the exit code,
// stdout and stderr. OMA_* variables of the caller do not leak in.
func runOMA(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("OMA_CONFIG", "")
	ios, _, out, errOut := cmdutil.Test()
	root := NewRootCmd(ios)
	root.SetArgs(args)
	code := cmdutil.Run(root, ios)
	return code, out.String(), errOut.String()
}

// approvedDB creates a SQLite database in dataDir with one approved VMA
// (port 9081), one revoked and one awaiting approval, and returns the
// approved enrollment and its key.
func approvedDB(t *testing.T, dataDir string) (*enroll.Enrollment, sshkey.KeyPair) {
	t.Helper()
	ctx := context.Background()
	dsn := filepath.Join(dataDir, "oma.db")
	if err := store.MigrateUp(ctx, "sqlite", dsn); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, "sqlite", dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := enroll.New(db, enroll.Config{}, bytes.Repeat([]byte{3}, 32), nil)
	admin := enroll.Meta{Actor: "admin"}
	step := func(name string, approve, revoke bool) (*enroll.Enrollment, sshkey.KeyPair) {
		kp, err := sshkey.LoadOrGenerate(t.TempDir(), name)
		if err != nil {
			t.Fatal(err)
		}
		code, err := svc.CreatePairingCode(ctx, 0, "", admin)
		if err != nil {
			t.Fatal(err)
		}
		res, err := svc.Enroll(ctx, enroll.EnrollRequest{PairingCode: code.Code.Reveal(), PublicKey: sshkey.AuthorizedKey(kp.Public, ""), Name: name, Version: "1"}, enroll.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Verify(ctx, res.EnrollmentID, enroll.SignChallenge(kp.Private, res.EnrollmentID, res.Challenge), enroll.Meta{}); err != nil {
			t.Fatal(err)
		}
		e, err := svc.Get(ctx, res.EnrollmentID)
		if err != nil {
			t.Fatal(err)
		}
		if approve {
			if e, err = svc.Approve(ctx, res.EnrollmentID, "", admin); err != nil {
				t.Fatal(err)
			}
		}
		if revoke {
			if _, err = svc.Revoke(ctx, res.EnrollmentID, "", admin); err != nil {
				t.Fatal(err)
			}
		}
		return e, *kp
	}
	step("revoked", true, true)
	e, kp := step("vma1", true, false)
	step("pending", false, false)
	return e, kp
}

func TestAuthorizedKeysCommand(t *testing.T) {
	dataDir := t.TempDir()
	e, kp := approvedDB(t, dataDir)
	key := sshkey.AuthorizedKey(kp.Public, "")
	want := fmt.Sprintf(`restrict,port-forwarding,command="/bin/false",permitopen="127.0.0.1:10809",permitlisten="127.0.0.1:%d" %s vma-enroll:%s:vma1`+"\n", *e.TunnelPort, key, e.ID)
	blob := strings.Fields(key)[1]
	stranger, _ := sshkey.LoadOrGenerate(t.TempDir(), "stranger")

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"all approved keys of the tunnel user", []string{"vma_tunnel"}, want},
		{"the matching key (%u %t %k)", []string{"vma_tunnel", "ssh-ed25519", blob}, want},
		{"an unknown key", []string{"vma_tunnel", "ssh-ed25519", strings.Fields(sshkey.AuthorizedKey(stranger.Public, ""))[1]}, ""},
		{"another key type", []string{"vma_tunnel", "ssh-rsa", "AAAAB3NzaC1yc2EAAAADAQABAAABAQ"}, ""},
		{"a garbage blob", []string{"vma_tunnel", "ssh-ed25519", "!!!"}, ""},
		{"another user", []string{"root"}, ""},
		{"another user with the key", []string{"root", "ssh-ed25519", blob}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runOMA(t, append([]string{"authorized-keys", "--data-dir", dataDir}, c.args...)...)
			if code != 0 || out != c.want || errOut != "" {
				t.Fatalf("exit %d\nstdout %q\nwant   %q\nstderr %q", code, out, c.want, errOut)
			}
		})
	}

	// Settings from the config file and the environment, as for serve.
	t.Run("config file and environment", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "oma-server.yaml")
		os.WriteFile(cfg, []byte("tunnel-user: tun\nnbd-target: 10.1.2.3:10900\nadmin-listen: 127.0.0.1:1\n"), 0o600)
		t.Setenv("OMA_DATA_DIR", dataDir)
		ios, _, out, errOut := cmdutil.Test()
		root := NewRootCmd(ios)
		root.SetArgs([]string{"authorized-keys", "--config", cfg, "tun"})
		if code := cmdutil.Run(root, ios); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		w := strings.Replace(want, `permitopen="127.0.0.1:10809"`, `permitopen="10.1.2.3:10900"`, 1)
		if out.String() != w {
			t.Fatalf("stdout %q\nwant   %q", out, w)
		}
	})

	// The key expiry policy: a key older than max age + grace is not
	// printed (sshd refuses it); a bad policy is a usage error.
	t.Run("expired key", func(t *testing.T) {
		time.Sleep(time.Until(e.ApprovedAt.Add(1100 * time.Millisecond)))
		policy := []string{"--key-max-age", "1s", "--key-rotation-window", "500ms", "--key-expiry-grace", "0"}
		for _, args := range [][]string{{"vma_tunnel"}, {"vma_tunnel", "ssh-ed25519", blob}} {
			code, out, errOut := runOMA(t, append(append([]string{"authorized-keys", "--data-dir", dataDir}, policy...), args...)...)
			if code != 0 || out != "" || errOut != "" {
				t.Fatalf("%v: exit %d stdout %q stderr %q", args, code, out, errOut)
			}
		}
		code, out, _ := runOMA(t, "authorized-keys", "--data-dir", dataDir, "--key-max-age", "90d", "vma_tunnel")
		if code != 0 || out != want {
			t.Fatalf("under a 90d policy: exit %d stdout %q", code, out)
		}
		for _, bad := range [][]string{{"--key-max-age", "90x"}, {"--key-max-age", "1d", "--key-rotation-window", "2d"}, {"--key-max-age", "1d", "--key-expiry-grace", "-1h"}} {
			code, out, errOut := runOMA(t, append(append([]string{"authorized-keys", "--data-dir", dataDir}, bad...), "vma_tunnel")...)
			if code != cmdutil.ExitUsage || out != "" || !strings.Contains(errOut, "--key-") {
				t.Errorf("%v: exit %d stdout %q stderr %q", bad, code, out, errOut)
			}
		}
	})

	// Failures: nothing on stdout, the reason on stderr, a non-zero exit
	// (sshd then accepts no key from the command).
	t.Run("missing database", func(t *testing.T) {
		empty := t.TempDir()
		code, out, errOut := runOMA(t, "authorized-keys", "--data-dir", empty, "vma_tunnel")
		if code != 1 || out != "" || !strings.Contains(errOut, "no database at") {
			t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
		}
		if _, err := os.Stat(filepath.Join(empty, "oma.db")); err == nil {
			t.Fatal("authorized-keys created a database")
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{}, {"vma_tunnel", "ssh-ed25519"}, {"a", "b", "c", "d"}} {
			code, out, errOut := runOMA(t, append([]string{"authorized-keys", "--data-dir", dataDir}, args...)...)
			if code != cmdutil.ExitUsage || out != "" || errOut == "" {
				t.Errorf("%v: exit %d stdout %q stderr %q", args, code, out, errOut)
			}
		}
	})
}

func TestSSHDConfigCommand(t *testing.T) {
	dataDir := t.TempDir()
	bin := "/usr/local/bin/oma-server"
	code, out, errOut := runOMA(t, "sshd-config", "--data-dir", dataDir, "--tunnel-user", "tun", "--nbd-target", "127.0.0.1:10900",
		"--command-user", "oma", "--oma-server-path", bin)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"Match User tun\n",
		"\tAuthorizedKeysFile none\n",
		"\tAuthorizedKeysCommand " + bin + " authorized-keys --data-dir " + dataDir + " --tunnel-user tun --nbd-target 127.0.0.1:10900 %u %t %k\n",
		"\tAuthorizedKeysCommandUser oma\n",
		"\tAllowTcpForwarding yes\n", "\tPermitOpen 127.0.0.1:10900\n", "\tGatewayPorts no\n",
		"\tX11Forwarding no\n", "\tAllowAgentForwarding no\n", "\tPermitTTY no\n", "\tPermitTunnel no\n",
		"\tMaxSessions 0\n", "\tForceCommand /bin/false\n",
		"\tClientAliveInterval 15\n", "\tClientAliveCountMax 3\n", "\tDisableForwarding no\n",
		"sshd cannot share port 443", "--tunnel-mode embedded",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("block lacks %q", want)
		}
	}
	// Everything after the Match line is indented or a comment.
	_, body, _ := strings.Cut(out, "Match User tun\n")
	for _, l := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if !strings.HasPrefix(l, "\t") {
			t.Errorf("line outside the block: %q", l)
		}
	}

	// Settings that come from the environment go onto the command line
	// (sshd gives the command no environment); a MariaDB DSN never does.
	t.Run("environment and mysql", func(t *testing.T) {
		t.Setenv("OMA_DB_DRIVER", "mysql")
		t.Setenv("OMA_DB_DSN", "oma:secret@tcp(db:3306)/oma")
		code, out, errOut := runOMA(t, "sshd-config", "--command-user", "oma", "--oma-server-path", bin)
		if code != 0 || strings.Contains(out, "secret") || !strings.Contains(out, " authorized-keys --db-driver mysql %u %t %k\n") ||
			!strings.Contains(errOut, "MariaDB DSN is not printed") {
			t.Fatalf("exit %d\n%s\nstderr %s", code, out, errOut)
		}
	})
	t.Run("config file", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "oma.yaml")
		os.WriteFile(cfg, []byte("db-driver: mysql\ndb-dsn: oma:secret@tcp(db:3306)/oma\n"), 0o600)
		code, out, errOut := runOMA(t, "sshd-config", "--config", cfg, "--command-user", "oma", "--oma-server-path", bin)
		if code != 0 || strings.Contains(out, "secret") || !strings.Contains(out, " authorized-keys --config "+cfg+" --db-driver mysql %u %t %k\n") ||
			strings.Contains(errOut, "DSN") {
			t.Fatalf("exit %d\n%s\nstderr %s", code, out, errOut)
		}
	})
	t.Run("file variant", func(t *testing.T) {
		code, out, errOut := runOMA(t, "sshd-config", "--keys-from", "file", "--authorized-keys-file", "/srv/keys/tun")
		if code != 0 || !strings.Contains(out, "\tAuthorizedKeysFile /srv/keys/tun\n") || strings.Contains(out, "\tAuthorizedKeysCommand ") {
			t.Fatalf("exit %d\n%s\nstderr %s", code, out, errOut)
		}
		code, out, _ = runOMA(t, "sshd-config", "--keys-from", "file")
		if code != 0 || !strings.Contains(out, "\tAuthorizedKeysFile .ssh/authorized_keys\n") {
			t.Fatalf("default file: exit %d\n%s", code, out)
		}
	})
	t.Run("refused values", func(t *testing.T) {
		for _, args := range [][]string{
			{"--data-dir", "/var/lib/oma enroll"},
			{"--oma-server-path", "/usr/local/bin/oma%u"},
			{"--oma-server-path", "relative/oma-server"},
			{"--tunnel-user", "a b"},
			{"--command-user", "x;y"},
			{"--keys-from", "both"},
		} {
			code, out, _ := runOMA(t, append([]string{"sshd-config", "--command-user", "oma", "--oma-server-path", bin}, args...)...)
			if code == 0 || out != "" {
				t.Errorf("%v: exit %d, printed\n%s", args, code, out)
			}
		}
	})
	// sshd itself accepts the block (where sshd is installed and can read
	// its host keys).
	t.Run("sshd -t", func(t *testing.T) {
		testbin.NeedRoot(t, "sshd -t reads the host keys")
		sshd := testbin.Need(t, "apt-get install openssh-server", "sshd")
		// sshd -t wants its privilege separation directory, which the
		// package creates at boot only.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("create /run/sshd: %v", err)
		}
		dir := t.TempDir()
		kp, err := sshkey.LoadOrGenerateFile(filepath.Join(dir, "hostkey"), "t")
		if err != nil {
			t.Fatal(err)
		}
		for _, keysFrom := range []string{"command", "file"} {
			_, block, _ := runOMA(t, "sshd-config", "--keys-from", keysFrom, "--command-user", "root", "--oma-server-path", bin)
			cfg := filepath.Join(dir, "sshd_config")
			os.WriteFile(cfg, []byte("HostKey "+kp.PrivatePath+"\nUsePAM no\n"+block), 0o600)
			if b, err := exec.Command(sshd, "-t", "-f", cfg).CombinedOutput(); err != nil {
				t.Errorf("sshd -t (%s): %v\n%s", keysFrom, err, b)
			}
		}
	})
}
