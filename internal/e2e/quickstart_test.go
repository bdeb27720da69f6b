package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestQuickStartTokenFromEnvironment: the README's Quick start sets
// OMACTL_TOKEN_FILE (and make run prints OMACTL_SERVER) once, and then
// runs omactl with no --token-file: the real omactl takes both from the
// environment. The README must still say so.
func TestQuickStartTokenFromEnvironment(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "export OMACTL_TOKEN_FILE=.oma-dev/admin.token") {
		t.Error("README.md's Quick start no longer exports OMACTL_TOKEN_FILE")
	}
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "bin/omactl") && strings.Contains(line, "--token-file") {
			t.Errorf("README.md's Quick start repeats --token-file: %q", line)
		}
	}

	s := startServer(t, backend{name: "sqlite"})
	env := []string{"OMACTL_SERVER=" + s.adminURL(), "OMACTL_TOKEN_FILE=" + s.tokenFile}
	r := runBinEnv(t, env, "omactl", "pairing-code", "-o", "json")
	if r.code != 0 {
		t.Fatalf("omactl pairing-code with OMACTL_TOKEN_FILE: %s", r)
	}
	var pc struct {
		PairingCode string `json:"pairing_code"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &pc); err != nil || pc.PairingCode == "" {
		t.Fatalf("pairing-code -o json: %v\n%s", err, r)
	}
	if r := runBinEnv(t, env, "omactl", "pending"); r.code != 0 {
		t.Fatalf("omactl pending with OMACTL_TOKEN_FILE: %s", r)
	}
	// Without it, the default token file (/var/lib/oma-enroll/admin.token)
	// is not this server's: the variable is what made the calls work.
	if r := runBinEnv(t, []string{"OMACTL_SERVER=" + s.adminURL(), "OMACTL_TOKEN_FILE=" + s.tokenFile + ".missing"}, "omactl", "pending"); r.code == 0 {
		t.Fatalf("omactl pending with a missing token file succeeded: %s", r)
	}
}
