package vmaclient

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

func testConfig(t *testing.T) VMAConfig {
	pub, _, err := sshkey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return VMAConfig{
		Dir:          t.TempDir(),
		EnrollmentID: "0b9d3c4e-1111-4aaa-8bbb-000000000001",
		OMAHost:      "oma.example.com",
		OMAPort:      8443,
		Binary:       "/usr/local/bin/vma-enroll",
		Tunnel: api.Tunnel{
			Port:           443,
			User:           "vma_tunnel",
			HostKey:        sshkey.AuthorizedKey(pub, "oma-host-key"),
			LocalForwards:  []api.Forward{{Listen: "127.0.0.1:10808", Target: "127.0.0.1:10809"}},
			RemoteForwards: []api.Forward{{Listen: "127.0.0.1:9081", Target: "127.0.0.1:8081"}},
		},
	}
}

func TestWriteVMAConfig(t *testing.T) {
	c := testConfig(t)
	paths, err := WriteVMAConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("paths = %v", paths)
	}
	kh, _ := os.ReadFile(filepath.Join(c.Dir, FileKnownHosts))
	key := strings.Join(strings.Fields(c.Tunnel.HostKey)[:2], " ")
	if !strings.Contains(string(kh), "\n[oma.example.com]:443 "+key+"\n") {
		t.Fatalf("known_hosts:\n%s", kh)
	}
	sc, _ := os.ReadFile(filepath.Join(c.Dir, FileSSHConfig))
	for _, want := range []string{
		"Host oma\n", "HostName oma.example.com\n", "Port 443\n", "User vma_tunnel\n",
		"IdentityFile " + filepath.Join(c.Dir, "id_ed25519") + "\n",
		"UserKnownHostsFile " + filepath.Join(c.Dir, "known_hosts") + "\n",
		"StrictHostKeyChecking yes\n", "IdentitiesOnly yes\n",
		"LocalForward 127.0.0.1:10808 127.0.0.1:10809\n", "RemoteForward 127.0.0.1:9081 127.0.0.1:8081\n",
		"ExitOnForwardFailure yes\n", "ServerAliveInterval 30\n", "ServerAliveCountMax 3\n",
		"ForwardAgent no\n", "ForwardX11 no\n", "RequestTTY no\n",
	} {
		if !strings.Contains(string(sc), want) {
			t.Errorf("ssh_config lacks %q:\n%s", want, sc)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(c.Dir, FileUnit))
	for _, want := range []string{"ExecStart=/usr/local/bin/vma-enroll tunnel --config-dir " + c.Dir + "\n", "Restart=always\n", "NoNewPrivileges=yes\n", "[Install]\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}

	// The real OpenSSH client must read the file as we mean it.
	if _, err := exec.LookPath("ssh"); err == nil {
		out, err := exec.Command("ssh", "-G", "-F", filepath.Join(c.Dir, FileSSHConfig), "oma").CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G: %v\n%s", err, out)
		}
		for _, want := range []string{"hostname oma.example.com", "port 443", "user vma_tunnel", "stricthostkeychecking true", "exitonforwardfailure yes", "localforward [127.0.0.1]:10808 [127.0.0.1]:10809", "remoteforward [127.0.0.1]:9081 [127.0.0.1]:8081", "identitiesonly yes", "forwardagent no", "requesttty false"} {
			if !strings.Contains(string(out), want+"\n") {
				t.Errorf("ssh -G output lacks %q", want)
			}
		}
	}
	if _, err := exec.LookPath("ssh-keygen"); err == nil {
		out, err := exec.Command("ssh-keygen", "-F", "[oma.example.com]:443", "-f", filepath.Join(c.Dir, FileKnownHosts)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), key) {
			t.Errorf("ssh-keygen -F does not find the host key: %v\n%s", err, out)
		}
	}
}

func TestEndpointDefaults(t *testing.T) {
	c := testConfig(t)
	c.Tunnel.Host, c.Tunnel.Port = "", 0
	h, p := c.Endpoint()
	if h != "oma.example.com" || p != 8443 {
		t.Fatalf("Endpoint = %s:%d, want the enrollment address", h, p)
	}
	c.Tunnel.Port = 22
	c.OMAHost = "10.1.2.3"
	kh, err := RenderKnownHosts(c)
	if err != nil || !strings.Contains(kh, "\n10.1.2.3 ssh-ed25519 ") {
		t.Fatalf("port 22 known_hosts: %v\n%s", err, kh)
	}
	c.Tunnel.HostKey = ""
	kh, err = RenderKnownHosts(c)
	if err != nil || strings.Contains(kh, "ssh-ed25519") {
		t.Fatalf("no host key known_hosts: %v\n%s", err, kh)
	}
}

func TestValidateRejectsInjection(t *testing.T) {
	for name, mut := range map[string]func(c *VMAConfig){
		"user newline":    func(c *VMAConfig) { c.Tunnel.User = "vma\nProxyCommand sh" },
		"host space":      func(c *VMAConfig) { c.Tunnel.Host = "oma ProxyCommand=x" },
		"forward space":   func(c *VMAConfig) { c.Tunnel.LocalForwards[0].Target = "127.0.0.1:1 x" },
		"forward no port": func(c *VMAConfig) { c.Tunnel.RemoteForwards[0].Listen = "127.0.0.1" },
		"port":            func(c *VMAConfig) { c.Tunnel.Port = 70000 },
		"host key":        func(c *VMAConfig) { c.Tunnel.HostKey = "ssh-ed25519 !!!" },
		"relative dir":    func(c *VMAConfig) { c.Dir = "etc/vma" },
		"quote in dir":    func(c *VMAConfig) { c.Dir = "/etc/vma\"x" },
	} {
		c := testConfig(t)
		mut(&c)
		if _, err := WriteVMAConfig(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if entries, _ := os.ReadDir(c.Dir); len(entries) != 0 {
			t.Errorf("%s: files written despite the error", name)
		}
	}
}

// TestValidateRefusesPivotForwards: the VMA writes only loopback forwards,
// at most one of each kind, and says why it refuses (issue 13, finding 6:
// LocalForward 0.0.0.0:10808 and RemoteForward 0.0.0.0:9081 ->
// 10.20.30.40:445 were written as sent).
func TestValidateRefusesPivotForwards(t *testing.T) {
	for name, c := range map[string]struct {
		mut  func(c *VMAConfig)
		want string
	}{
		"local listen on all": {func(c *VMAConfig) { c.Tunnel.LocalForwards[0].Listen = "0.0.0.0:10808" }, `listen address "0.0.0.0:10808" is not on loopback`},
		"local listen on LAN": {func(c *VMAConfig) { c.Tunnel.LocalForwards[0].Listen = "192.168.1.5:10808" }, "not on loopback"},
		"remote listen all":   {func(c *VMAConfig) { c.Tunnel.RemoteForwards[0].Listen = "0.0.0.0:9081" }, "not on loopback"},
		"remote target LAN":   {func(c *VMAConfig) { c.Tunnel.RemoteForwards[0].Target = "10.20.30.40:445" }, `remote forward "127.0.0.1:9081" -> "10.20.30.40:445"`},
		"remote target name":  {func(c *VMAConfig) { c.Tunnel.RemoteForwards[0].Target = "fileserver:445" }, "not on loopback"},
		"remote target v6":    {func(c *VMAConfig) { c.Tunnel.RemoteForwards[0].Target = "[fe80::1]:445" }, "not on loopback"},
		"two local": {func(c *VMAConfig) {
			c.Tunnel.LocalForwards = append(c.Tunnel.LocalForwards, api.Forward{Listen: "127.0.0.1:2222", Target: "127.0.0.1:22"})
		}, "at most one of each"},
		"two remote": {func(c *VMAConfig) {
			c.Tunnel.RemoteForwards = append(c.Tunnel.RemoteForwards, api.Forward{Listen: "127.0.0.1:9082", Target: "127.0.0.1:22"})
		}, "at most one of each"},
	} {
		cfg := testConfig(t)
		c.mut(&cfg)
		_, err := WriteVMAConfig(cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one containing %q", name, err, c.want)
			continue
		}
		if entries, _ := os.ReadDir(cfg.Dir); len(entries) != 0 {
			t.Errorf("%s: files written despite the error", name)
		}
	}
	// Loopback in every spelling is accepted, and the local forward's
	// target is the OMA's to choose (it dials it, on its own side).
	cfg := testConfig(t)
	cfg.Tunnel.LocalForwards[0] = api.Forward{Listen: "localhost:10808", Target: "10.0.0.9:10809"}
	cfg.Tunnel.RemoteForwards[0] = api.Forward{Listen: "127.0.0.1:9081", Target: "[::1]:8081"}
	if _, err := WriteVMAConfig(cfg); err != nil {
		t.Fatalf("loopback forwards refused: %v", err)
	}
}
