package tunnel_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/omatest"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// TestRevokedKeyStopsEverywhere: one key enrolled as vma-a and again as
// vma-clone (a clone sharing its key, or 'vma-enroll --force --name'): on
// approving the clone vma-a is revoked, so after the clone is revoked too the
// key logs in nowhere (issue 13, finding 3: old main approved both, and after
// revoking one the key still logged in as the other).
func TestRevokedKeyStopsEverywhere(t *testing.T) {
	requireSSH(t)
	for _, driver := range []string{"sqlite", "mysql"} {
		t.Run(driver, func(t *testing.T) {
			db, _ := omatest.OpenStore(t, driver)
			o := startOMA(t, db, t.TempDir(), testbin.FreePorts(t, 4), echoServer(t, "nbd:"), echoServer(t, "api:"), testbin.FreeAddr(t))
			a := o.enrollVMA("vma-a", nil)
			cloneDir := t.TempDir()
			key, err := os.ReadFile(filepath.Join(a.dir, "id_ed25519"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cloneDir, "id_ed25519"), key, 0o600); err != nil {
				t.Fatal(err)
			}
			clone := o.enrollVMAIn(cloneDir, "vma-clone", nil)
			loggedIn := func() bool {
				out, _ := bareSSH(t, clone, "-o", "BatchMode=yes", "oma", "true")
				return !strings.Contains(out, "Permission denied")
			}
			if !loggedIn() {
				t.Fatal("the approved clone's key was refused")
			}
			if st := o.call("DELETE", "http://"+o.srv.AdminAddr()+api.PathRevoke+clone.id, o.token, nil, nil); st != 200 {
				t.Fatalf("revoke vma-clone: %d", st)
			}
			if loggedIn() {
				t.Fatal("after revoking vma-clone its key still logs in (as vma-a: the key was approved twice)")
			}
		})
	}
}
