package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// rotateToTunnel (row 10) enrolls one VMA with the real vma-enroll, runs
// `vma-enroll tunnel`, then n times runs `vma-enroll rotate` and measures,
// on the wall clock, from the start of rotate to the OMA's audit of the
// tunnel's connection with the new key (the tunnel notices the promoted
// key within its 250 ms file check, closes the old connection and connects
// with the new key).
func rotateToTunnel(ctx context.Context, bins Bins, s *server, n int, dir string) (durations, error) {
	cfgDir := filepath.Join(dir, "vma-rotate")
	id, err := enrollApproved(ctx, bins, s, "rotate-0", cfgDir)
	if err != nil {
		return nil, err
	}
	tun := exec.CommandContext(ctx, bins.path("vma-enroll"), "tunnel", "--config-dir", cfgDir)
	tun.Env = cleanEnv()
	if err := tun.Start(); err != nil {
		return nil, err
	}
	defer func() {
		tun.Process.Signal(os.Interrupt)
		tun.Wait()
	}()
	if err := s.waitConnections(id, 1, 30*time.Second); err != nil {
		return nil, err
	}
	var out durations
	for i := range n {
		t0 := time.Now()
		rot := exec.CommandContext(ctx, bins.path("vma-enroll"), "rotate", "--config-dir", cfgDir, "-o", "json")
		rot.Env = cleanEnv()
		b, err := rot.Output()
		if err != nil {
			return nil, fmt.Errorf("vma-enroll rotate %d: %w", i+1, err)
		}
		var rep struct {
			Result string `json:"result"`
		}
		if err := json.Unmarshal(b, &rep); err != nil || rep.Result != "rotated" {
			return nil, fmt.Errorf("vma-enroll rotate %d: %s", i+1, b)
		}
		if err := s.waitConnections(id, i+2, 30*time.Second); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// waitConnections waits until the audit holds n connection events of id.
func (s *server) waitConnections(id string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var l api.AuditList
		if err := s.admin_("GET", api.PathAudit+"?event_type=connection&enrollment_id="+id+"&limit=1000", nil, &l); err == nil && len(l.Events) >= n {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no tunnel connection %d of %s within %s", n, id, timeout)
}
