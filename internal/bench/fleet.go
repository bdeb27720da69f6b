package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
)

// FleetRow is the table row of the fleet figures (docs/fleet.md).
const FleetRow = 9

// RotateRow is the table row of the key rotation figures (docs/rotation.md),
// the last row.
const RotateRow = 10

// fleetSize is how many VMAs the fleet row enrolls: 1,000 in the full run.
func fleetSize(cfg Config) int {
	if cfg.Enrollments < 1000 {
		return max(cfg.Enrollments, 20) // smoke
	}
	return 1000
}

// fleetProcs is how many of them are real vma-enroll processes.
const fleetProcs = 5

// fleetEnroll measures n VMAs enrolling with one pre-approved multi-use
// code, each until it sees its approval (the result endpoint answers
// approved with the tunnel): n-fleetProcs in-process clients over HTTPS
// and fleetProcs vma-enroll processes. It returns the wall time, the
// in-process latencies, the processes' run times and the errors.
func fleetEnroll(s *server, n int, dir string) (time.Duration, durations, durations, int, error) {
	var pc api.PairingCodeResponse
	if err := s.admin_("POST", api.PathPairingCode, api.PairingCodeRequest{TTLSeconds: 3600, Uses: n,
		Labels: map[string]string{"site": "fleet"}, AutoApprove: true, FromCIDR: "127.0.0.0/8"}, &pc); err != nil {
		return 0, nil, nil, 0, err
	}
	inproc := n - fleetProcs
	ks := keys(inproc)
	c := &http2Client{Client: keepAliveClient(64)}
	var (
		mu     sync.Mutex
		errs   int
		procs  durations
		wg     sync.WaitGroup
		procEr error
	)
	start := time.Now()
	for i := range fleetProcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			cmd := exec.Command(filepath.Join(filepath.Dir(s.cmd.Path), "vma-enroll"), "--oma", s.public, "--code", pc.PairingCode,
				"--fingerprint", pc.OMAFingerprint, "--name", fmt.Sprintf("fleet-proc-%d", i), "--label", "kind=process",
				"--config-dir", filepath.Join(dir, fmt.Sprintf("proc-%d", i)), "--timeout", "2m", "-o", "json")
			cmd.Env = cleanEnv()
			out, err := cmd.CombinedOutput()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				procEr = fmt.Errorf("vma-enroll: %v\n%s", err, out)
				return
			}
			procs = append(procs, time.Since(t0))
		}()
	}
	_, lat, err := parallel(32, inproc, func(i int) error {
		id, tok, err := s.enrollOnce(c, pc.PairingCode, ks[i], fmt.Sprintf("fleet-%04d", i))
		if err != nil {
			return err
		}
		var res api.ResultResponse
		if err := s.pub(c.Client, "GET", api.PathResult+"?enrollment_id="+id, tok, nil, &res); err != nil {
			return err
		}
		if res.Status != "approved" || res.Tunnel == nil {
			return fmt.Errorf("VMA %s sees %s, want approved with a tunnel", id, res.Status)
		}
		return nil
	})
	wg.Wait()
	wall := time.Since(start)
	if err != nil {
		errs++
		return wall, lat, procs, errs, err
	}
	return wall, lat, procs, errs, procEr
}

// fleetApprove enrolls n VMAs with one manual code labelled site=x (not
// timed) and times `omactl approve -l site=x --yes` approving them all.
func fleetApprove(ctx context.Context, bins Bins, s *server, n int) (time.Duration, error) {
	var pc api.PairingCodeResponse
	if err := s.admin_("POST", api.PathPairingCode, api.PairingCodeRequest{TTLSeconds: 3600, Uses: n,
		Labels: map[string]string{"site": "x"}}, &pc); err != nil {
		return 0, err
	}
	ks := keys(n)
	c := &http2Client{Client: keepAliveClient(32)}
	if _, _, err := parallel(32, n, func(i int) error {
		_, _, err := s.enrollOnce(c, pc.PairingCode, ks[i], fmt.Sprintf("fleet-x-%04d", i))
		return err
	}); err != nil {
		return 0, err
	}
	tokFile := filepath.Join(s.dataDir, "admin.token")
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, bins.path("omactl"), "--server", "http://"+s.admin, "--token-file", tokFile,
		"approve", "-l", "site=x", "--yes", "-o", "json")
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	took := time.Since(t0)
	if err != nil {
		return took, fmt.Errorf("omactl approve -l site=x: %v\n%s", err, out)
	}
	var got api.EnrollmentList
	if err := s.admin_("GET", api.PathEnrollments+"?status=approved&selector=site%3Dx", nil, &got); err != nil {
		return took, err
	}
	if len(got.Enrollments) != n {
		return took, fmt.Errorf("after omactl approve -l site=x: %d approved, want %d", len(got.Enrollments), n)
	}
	return took, nil
}

// runFleet adds the fleet row for one store.
func runFleet(ctx context.Context, cfg Config, bins Bins, s *server, driver, dir string, rep *Report, logf func(string, ...any)) error {
	n := fleetSize(cfg)
	os.MkdirAll(dir, 0o700)
	logf("%s: fleet: %d VMAs from one pre-approved code", driver, n)
	wall, lat, procs, errs, err := fleetEnroll(s, n, dir)
	if err != nil {
		return fmt.Errorf("fleet enroll: %w", err)
	}
	logf("%s: fleet: omactl approve -l site=x --yes over %d pending VMAs", driver, n)
	took, err := fleetApprove(ctx, bins, s, n)
	if err != nil {
		return fmt.Errorf("fleet approve: %w", err)
	}
	rep.add(Row{
		Measure: fmt.Sprintf("%d. fleet (%s)", FleetRow, driver),
		Setup: fmt.Sprintf("%d VMAs from one pre-approved %d-use code (%d in-process clients on 32 connections, %d vma-enroll processes), to \"approved seen by the VMA\"; then `omactl approve -l site=x --yes` over %d pending",
			n, n, n-fleetProcs, fleetProcs, n),
		Result: fmt.Sprintf("%.0f VMAs/s (%s for all), p50 %s, p99 %s, %d errors; vma-enroll p50 %s; bulk approve of %d: %s",
			float64(n)/wall.Seconds(), wall.Round(time.Millisecond), ms(lat.pct(50)), ms(lat.pct(99)), errs, ms(procs.pct(50)), n, took.Round(time.Millisecond)),
		Reference: "issue 17: 1,000 within a minute",
		Ratio:     ratio(wall.Seconds(), 60) + " (wall / 60 s)",
		Target:    "≤ 60 s, 0 errors",
	})
	return nil
}
