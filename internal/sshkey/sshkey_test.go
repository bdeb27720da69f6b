package sshkey_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

func mustGenerate(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := sshkey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestFingerprintMatchesSSHKeygen: our fingerprint is what `ssh-keygen -lf`
// prints for the same public key file, and for the private key file we write.
func TestFingerprintMatchesSSHKeygen(t *testing.T) {
	keygen := testbin.Need(t, "apt-get install openssh-client", "ssh-keygen")
	pub, priv := mustGenerate(t)
	dir := t.TempDir()
	pubPath := filepath.Join(dir, "id_ed25519.pub")
	if err := os.WriteFile(pubPath, []byte(sshkey.AuthorizedKey(pub, "vma@test")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pem, err := sshkey.MarshalPrivateKey(priv, "vma@test")
	if err != nil {
		t.Fatal(err)
	}
	privPath := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(privPath, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	want := sshkey.Fingerprint(pub)
	if !strings.HasPrefix(want, "SHA256:") || strings.HasSuffix(want, "=") {
		t.Errorf("Fingerprint = %q, want SHA256: and unpadded base64", want)
	}
	for _, path := range []string{pubPath, privPath} {
		out, err := exec.Command(keygen, "-lf", path).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -lf %s: %v\n%s", path, err, out)
		}
		// "256 SHA256:… vma@test (ED25519)"
		fields := strings.Fields(string(out))
		if len(fields) < 2 || fields[1] != want {
			t.Errorf("ssh-keygen -lf %s = %q, want fingerprint %s", filepath.Base(path), out, want)
		}
	}
	// And ssh-keygen derives the same public key from our private key file.
	out, err := exec.Command(keygen, "-y", "-f", privPath).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v", err)
	}
	if got := strings.Fields(string(out)); len(got) < 2 || got[0]+" "+got[1] != sshkey.AuthorizedKey(pub, "") {
		t.Errorf("ssh-keygen -y = %q, want %q", out, sshkey.AuthorizedKey(pub, ""))
	}
}

// TestParseKeyFromSSHKeygen: a key made by ssh-keygen parses, with the
// fingerprint ssh-keygen reports.
func TestParseKeyFromSSHKeygen(t *testing.T) {
	keygen := testbin.Need(t, "apt-get install openssh-client", "ssh-keygen")
	path := filepath.Join(t.TempDir(), "k")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "made by ssh-keygen", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	line, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, canon, err := sshkey.ParseAuthorizedKey(string(line))
	if err != nil {
		t.Fatalf("ParseAuthorizedKey(%q): %v", line, err)
	}
	if want := strings.Join(strings.Fields(string(line))[:2], " "); canon != want {
		t.Errorf("canonical line = %q, want %q", canon, want)
	}
	out, err := exec.Command(keygen, "-lf", path+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	if fp := strings.Fields(string(out))[1]; sshkey.Fingerprint(pub) != fp {
		t.Errorf("Fingerprint = %s, ssh-keygen says %s", sshkey.Fingerprint(pub), fp)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := sshkey.ParsePrivateKey(data)
	if err != nil {
		t.Fatalf("ParsePrivateKey(ssh-keygen's key): %v", err)
	}
	if !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Errorf("private key does not match the public key")
	}
}

func authorizedLine(t *testing.T, k any) string {
	t.Helper()
	pk, err := ssh.NewPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
}

// TestParseAuthorizedKeyRejects: other key types, options, several keys,
// garbage: each refused with a message saying what is wrong.
func TestParseAuthorizedKeyRejects(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := mustGenerate(t)
	good := sshkey.AuthorizedKey(pub, "")
	body := strings.Fields(good)[1]
	cases := []struct {
		name, line, want string
	}{
		{"rsa", authorizedLine(t, &rsaKey.PublicKey), "only ssh-ed25519 keys are accepted, got \"ssh-rsa\""},
		{"ecdsa", authorizedLine(t, &ecKey.PublicKey), "only ssh-ed25519 keys are accepted, got \"ecdsa-sha2-nistp256\""},
		{"sk", "sk-ssh-ed25519@openssh.com AAAA", "only ssh-ed25519 keys are accepted"},
		{"dss", "ssh-dss AAAA", "only ssh-ed25519 keys are accepted"},
		{"empty", "", "public key is empty"},
		{"blank", " \t ", "public key is empty"},
		{"garbage", "hello world", "not an authorized_keys line"},
		{"options", `restrict,port-forwarding ` + good, "not an authorized_keys line"},
		{"bad base64", "ssh-ed25519 !!!notbase64!!!", "malformed"},
		{"truncated", "ssh-ed25519 " + body[:len(body)-8], "malformed"},
		{"type mismatch", "ssh-ed25519 " + strings.Fields(authorizedLine(t, &ecKey.PublicKey))[1], "malformed"},
		{"two lines", good + "\n" + good, "single authorized_keys line"},
		{"nul", good + "\x00", "single authorized_keys line"},
		{"too long", good + " " + strings.Repeat("c", sshkey.MaxLineLength), "too long"},
	}
	for _, c := range cases {
		_, _, err := sshkey.ParseAuthorizedKey(c.line)
		if err == nil {
			t.Errorf("%s: ParseAuthorizedKey(%.40q) = nil error, want %q", c.name, c.line, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error = %q, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestParseAuthorizedKeyAccepts(t *testing.T) {
	pub, _ := mustGenerate(t)
	canon := sshkey.AuthorizedKey(pub, "")
	for _, line := range []string{canon, canon + " root@vma", "  " + canon + " a comment with spaces \n", canon + "\n"} {
		got, c, err := sshkey.ParseAuthorizedKey(line)
		if err != nil {
			t.Errorf("ParseAuthorizedKey(%q): %v", line, err)
			continue
		}
		if !got.Equal(pub) || c != canon {
			t.Errorf("ParseAuthorizedKey(%q) = %q, want %q", line, c, canon)
		}
	}
}

// FuzzParseAuthorizedKey: never panics; an accepted key is ssh-ed25519 and
// its canonical line parses back to the same key and line.
func FuzzParseAuthorizedKey(f *testing.F) {
	pub, _, err := sshkey.Generate(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		f.Fatal(err)
	}
	canon := sshkey.AuthorizedKey(pub, "")
	for _, s := range []string{canon, canon + " comment", " " + canon + "\n", "ssh-ed25519 AAAA", "ssh-rsa AAAAB3NzaC1yc2E",
		"", "ssh-ed25519", "ssh-ed25519 " + strings.Repeat("A", 68), `command="x" ` + canon, canon + "\n" + canon,
		"ecdsa-sha2-nistp256 AAAA", "\xff\xfe", "ssh-ed25519\t" + strings.Fields(canon)[1]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		key, c, err := sshkey.ParseAuthorizedKey(line)
		if err != nil {
			return
		}
		if len(key) != ed25519.PublicKeySize {
			t.Fatalf("ParseAuthorizedKey(%q): key of %d bytes", line, len(key))
		}
		if !strings.HasPrefix(c, "ssh-ed25519 ") || strings.ContainsAny(c, "\r\n") || strings.Count(c, " ") != 1 {
			t.Fatalf("ParseAuthorizedKey(%q): canonical line %q is not 'ssh-ed25519 <base64>'", line, c)
		}
		key2, c2, err := sshkey.ParseAuthorizedKey(c)
		if err != nil || c2 != c || !key2.Equal(key) {
			t.Fatalf("canonical line %q does not round-trip: %q, %v", c, c2, err)
		}
		if c != sshkey.AuthorizedKey(key, "") {
			t.Fatalf("canonical line %q != AuthorizedKey(key) %q", c, sshkey.AuthorizedKey(key, ""))
		}
	})
}

func TestLoadOrGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	kp, err := sshkey.LoadOrGenerate(dir, "vma@test")
	if err != nil {
		t.Fatal(err)
	}
	if !kp.Generated {
		t.Errorf("first call: Generated = false, want true")
	}
	for path, mode := range map[string]os.FileMode{kp.PrivatePath: 0o600, kp.PublicPath: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %o, want %o", filepath.Base(path), fi.Mode().Perm(), mode)
		}
	}
	again, err := sshkey.LoadOrGenerate(dir, "vma@test")
	if err != nil {
		t.Fatal(err)
	}
	if again.Generated || !again.Public.Equal(kp.Public) {
		t.Errorf("second call: Generated %v, same key %v; want false, true", again.Generated, again.Public.Equal(kp.Public))
	}
	// A stale .pub is rewritten from the private key.
	other, _ := mustGenerate(t)
	if err := os.WriteFile(kp.PublicPath, []byte(sshkey.AuthorizedKey(other, "")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sshkey.LoadOrGenerate(dir, "vma@test"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(kp.PublicPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := sshkey.ParseAuthorizedKey(string(data)); err != nil || !got.Equal(kp.Public) {
		t.Errorf("stale .pub not repaired: %q", data)
	}
}
