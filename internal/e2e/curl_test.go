package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// TestCurlWalkthrough runs examples/curl-enroll.sh, docs/api.md's
// enrollment with curl, openssl and jq only, against the real server: the
// API as documented is enough to enroll, with the certificate pinned.
func TestCurlWalkthrough(t *testing.T) {
	for _, tool := range []string{"curl", "jq", "openssl", "xxd", "base64"} {
		testbin.Need(t, "the curl walkthrough needs it; .ci/run installs it", tool)
	}
	s := startServer(t, backend{name: "sqlite"})
	script, _ := filepath.Abs("../../examples/curl-enroll.sh")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, s.adminURL(), "https://"+s.public, s.tokenFile, "vma-curl-01")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl-enroll.sh: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	var res api.ResultResponse
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("the script's last answer is not the result: %v\n%s", err, out)
	}
	if res.Status != "approved" || res.VMAName != "vma-curl-01" || res.Tunnel == nil || len(res.Tunnel.RemoteForwards) != 1 {
		t.Fatalf("result %+v", res)
	}
	var active []api.Connection
	s.omactlJSON(&active, "active")
	if len(active) != 1 || active[0].EnrollmentID != res.EnrollmentID {
		t.Fatalf("omactl active after the curl enrollment: %+v", active)
	}
	// The approval notes the script sent are in the audit trail.
	r := s.omactl("audit", "--vma", "vma-curl-01", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, "approved with curl") {
		t.Fatalf("audit: %s", r)
	}
}
