package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Defaults is the full run of `make bench`.
func Defaults() Config {
	return Config{
		Enrollments: 2000, Approvals: 200, Tunnels: 1000, Revokes: 100, SSHDTunnels: 200, TunnelRuns: 20,
		ScaleVMAs: 10000, ScaleEvents: 1000000, KeyGens: 200, Clients: []int{1, 16, 64},
		ThroughputBytes: 512 << 20, ThroughputRuns: 3,
	}
}

// Smoke is a run of about ten seconds that keeps the harness working in CI.
func Smoke() Config {
	return Config{
		Enrollments: 64, Approvals: 10, Tunnels: 10, Revokes: 5, SSHDTunnels: 5, TunnelRuns: 1,
		ScaleVMAs: 100, ScaleEvents: 2000, KeyGens: 5, Clients: []int{1, 16},
		ThroughputBytes: 16 << 20, ThroughputRuns: 1,
	}
}

// Run measures everything and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	work, err := os.MkdirTemp("", "oma-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	logf("building binaries")
	bins, err := Build(ctx, filepath.Join(work, "bin"))
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	drivers := []string{"sqlite"}
	if cfg.MySQLDSN != "" {
		drivers = append(drivers, "mysql")
	} else {
		rep.note("MariaDB rows not measured: set OMA_TEST_MYSQL_DSN (make bench passes it through).")
	}
	for _, driver := range drivers {
		if err := runStore(ctx, cfg, bins, driver, work, rep, logf); err != nil {
			return rep, fmt.Errorf("%s: %w", driver, err)
		}
	}

	if cfg.wants(8) {
		logf("row 8: forward throughput (%d MiB per figure)", cfg.ThroughputBytes>>20)
		if err := throughputRows(ctx, cfg, bins, work, rep, logf); err != nil {
			return rep, fmt.Errorf("forward throughput: %w", err)
		}
	}
	if !cfg.wants(6) {
		return rep, nil
	}
	logf("key generation")
	ours, theirs, err := keygen(cfg.KeyGens, filepath.Join(work, "keys"))
	if err != nil {
		return rep, err
	}
	spawn, _ := timeSpawn(cfg.KeyGens)
	ref := "ssh-keygen not installed"
	r := "n/a"
	if theirs > 0 {
		net := theirs - spawn
		ref = fmt.Sprintf("ssh-keygen -t ed25519: %s per key (%s after subtracting a bare process start of %s)", ms(theirs), ms(net), ms(spawn))
		r = ratio(float64(ours), float64(net))
	}
	rep.add(Row{"6. key generation", fmt.Sprintf("%d keys, generate + encode + write both files", cfg.KeyGens),
		fmt.Sprintf("%s per key (in-process, as vma-enroll does it)", ms(ours)), ref, r + " (ours / ssh-keygen net)", "report"})
	return rep, nil
}

func timeSpawn(n int) (time.Duration, error) {
	t0 := time.Now()
	for range n {
		if err := exec.Command("true").Run(); err != nil {
			return 0, err
		}
	}
	return time.Since(t0) / time.Duration(max(n, 1)), nil
}

func runStore(ctx context.Context, cfg Config, bins Bins, driver, work string, rep *Report, logf func(string, ...any)) error {
	dir := filepath.Join(work, driver)
	os.MkdirAll(dir, 0o700)
	st, err := newStore(driver, cfg.MySQLDSN, dir)
	if err != nil {
		return err
	}
	defer st.drop()
	s, err := startServer(ctx, bins, st, filepath.Join(dir, "data"))
	if err != nil {
		return err
	}
	defer s.stop()

	// 1. Enrollment throughput beside its floor.
	for _, c := range cfg.Clients {
		if !cfg.wants(1) {
			break
		}
		n := max(cfg.Enrollments, c*4)
		logf("%s: throughput with %d clients (%d enrollments)", driver, c, n)
		srvRate, srvLat, err := throughputServer(s, c, n)
		if err != nil {
			return fmt.Errorf("server throughput: %w", err)
		}
		fst, err := newStore(driver, cfg.MySQLDSN, filepath.Join(dir, fmt.Sprintf("floor-%d", c)))
		if err != nil {
			return err
		}
		os.MkdirAll(filepath.Join(dir, fmt.Sprintf("floor-%d", c)), 0o700)
		floorRate, floorLat, err := throughputFloor(ctx, fst, c, n)
		fst.drop()
		if err != nil {
			return fmt.Errorf("floor throughput: %w", err)
		}
		rep.add(Row{
			Measure:   "1. enrollments/s (" + driver + ")",
			Setup:     fmt.Sprintf("%d clients, %d enroll+sign+verify, keep-alive TLS", c, n),
			Result:    fmt.Sprintf("%.0f/s, p50 %s, p99 %s", srvRate, ms(srvLat.pct(50)), ms(srvLat.pct(99))),
			Reference: fmt.Sprintf("floor (service in-process): %.0f/s, p50 %s, p99 %s", floorRate, ms(floorLat.pct(50)), ms(floorLat.pct(99))),
			Ratio:     fmt.Sprintf("%s rate, %s p99", ratio(srvRate, floorRate), ratio(float64(srvLat.pct(99)), float64(floorLat.pct(99)))),
			Target:    "rate ≥ 0.7 and p99 ≤ 2 at 64 clients",
		})
	}

	// 9. Fleet: one pre-approved multi-use code, and a bulk approve.
	if cfg.wants(FleetRow) {
		if err := runFleet(ctx, cfg, bins, s, driver, filepath.Join(dir, "fleet"), rep, logf); err != nil {
			return err
		}
	}

	// 2. Approval to VMA.
	if cfg.wants(2) {
		logf("%s: approval to VMA (%d)", driver, cfg.Approvals)
		lat, err := approvalToVMA(s, s, cfg.Approvals)
		if err != nil {
			return fmt.Errorf("approval to VMA: %w", err)
		}
		rep.add(Row{"2. approve → VMA sees it (" + driver + ")", fmt.Sprintf("%d waiting long polls", cfg.Approvals),
			fmt.Sprintf("p50 %s, p99 %s, max %s", ms(lat.pct(50)), ms(lat.pct(99)), ms(lat.pct(100))),
			"seed design: 30 s polling, 15 s on average", ratio(float64(lat.pct(99)), float64(15*time.Second)) + " (p99 / 15 s)", "p99 ≤ 1 s"})
	}

	// 3. Approval to tunnel.
	if cfg.wants(3) {
		logf("%s: approval to tunnel (%d)", driver, cfg.TunnelRuns)
		tl, err := approvalToTunnel(ctx, bins, s, cfg.TunnelRuns, filepath.Join(dir, "vmas"))
		if err != nil {
			return fmt.Errorf("approval to tunnel: %w", err)
		}
		rep.add(Row{"3. approve → tunnel up (" + driver + ")", fmt.Sprintf("%d real vma-enroll runs, then `vma-enroll tunnel`", cfg.TunnelRuns),
			fmt.Sprintf("p50 %s, p99 %s", ms(tl.pct(50)), ms(tl.pct(99))), "target 2 s", ratio(float64(tl.pct(99)), float64(2*time.Second)) + " (p99 / 2 s)", "p99 ≤ 2 s"})
	}

	// 10. Key rotation to tunnel up on the new key.
	if cfg.wants(RotateRow) {
		logf("%s: rotate to tunnel up on the new key (%d)", driver, cfg.TunnelRuns)
		rl, err := rotateToTunnel(ctx, bins, s, cfg.TunnelRuns, filepath.Join(dir, "rotate"))
		if err != nil {
			return fmt.Errorf("rotate to tunnel: %w", err)
		}
		rep.add(Row{strconv.Itoa(RotateRow) + ". `vma-enroll rotate` → tunnel up on the new key (" + driver + ")", fmt.Sprintf("%d rotations in a row of one VMA, `vma-enroll tunnel` running", cfg.TunnelRuns),
			fmt.Sprintf("p50 %s, p99 %s", ms(rl.pct(50)), ms(rl.pct(99))), "the tunnel checks its key file every 250 ms", ratio(float64(rl.pct(99)), float64(2*time.Second)) + " (p99 / 2 s)", "report"})
	}

	// 4. Tunnel memory (embedded endpoint), and 7, revocation, measured
	// once, on SQLite.
	if driver == "sqlite" && (cfg.wants(4) || cfg.wants(7)) {
		n := cfg.Tunnels
		if !cfg.wants(4) {
			n = cfg.Revokes // row 7 alone needs only the tunnels it revokes
		}
		logf("idle tunnels (%d)", n)
		per, dropped, err := idleTunnels(s, n, cfg.Revokes, s)
		if err != nil {
			return fmt.Errorf("idle tunnels: %w", err)
		}
		if cfg.wants(4) {
			logf("idle tunnels to OpenSSH sshd (%d)", cfg.SSHDTunnels)
			ref, r := sshdReference(ctx, bins, cfg.SSHDTunnels, filepath.Join(dir, "sshd"), float64(per), logf)
			rep.add(Row{"4. memory per idle tunnel", fmt.Sprintf("%d tunnels with reverse forward, embedded endpoint, PSS growth", cfg.Tunnels),
				fmt.Sprintf("%.1f KiB", float64(per)/1024), ref, r, "≤ 64 KiB"})
		}
		if cfg.wants(7) {
			rep.add(Row{"7. revoke → tunnel dropped", fmt.Sprintf("%d live tunnels revoked one at a time (same instance), until the client sees the end", len(dropped)),
				fmt.Sprintf("p50 %s, p99 %s, max %s", ms(dropped.pct(50)), ms(dropped.pct(99)), ms(dropped.pct(100))),
				"docs/design.md §6: within a second", ratio(float64(dropped.pct(99)), float64(time.Second)) + " (p99 / 1 s)", "p99 ≤ 1 s"})
		}
	}

	// 2 and 7 across instances: a second oma-server on the same MariaDB
	// (the same data directory: certificate, host key and admin token, as
	// a deployment shares them) approves and revokes what the first holds.
	if driver == "mysql" && (cfg.wants(2) || cfg.wants(7)) {
		s2, err := startServer(ctx, bins, st, filepath.Join(dir, "data"))
		if err != nil {
			return fmt.Errorf("second instance: %w", err)
		}
		defer s2.stop()
		if cfg.wants(2) {
			logf("%s: approval on another instance to VMA (%d)", driver, cfg.Approvals)
			lat, err := approvalToVMA(s, s2, cfg.Approvals)
			if err != nil {
				return fmt.Errorf("approval on another instance: %w", err)
			}
			rep.add(Row{"2. approve → VMA sees it (mysql, another instance)", fmt.Sprintf("%d long polls on one instance, approved on a second one", cfg.Approvals),
				fmt.Sprintf("p50 %s, p99 %s, max %s", ms(lat.pct(50)), ms(lat.pct(99)), ms(lat.pct(100))),
				"issue 3: within one second", ratio(float64(lat.pct(99)), float64(time.Second)) + " (p99 / 1 s)", "p99 ≤ 1 s"})
		}
		if cfg.wants(7) {
			logf("%s: revocation on another instance (%d tunnels)", driver, cfg.Revokes)
			_, dropped, err := idleTunnels(s, cfg.Revokes, cfg.Revokes, s2)
			if err != nil {
				return fmt.Errorf("revocation on another instance: %w", err)
			}
			rep.add(Row{"7. revoke → tunnel dropped (mysql, another instance)", fmt.Sprintf("%d live tunnels on one instance, revoked one at a time on a second one", len(dropped)),
				fmt.Sprintf("p50 %s, p99 %s, max %s", ms(dropped.pct(50)), ms(dropped.pct(99)), ms(dropped.pct(100))),
				"docs/design.md §6: within a second", ratio(float64(dropped.pct(99)), float64(time.Second)) + " (p99 / 1 s)", "p99 ≤ 1 s"})
		}
	}

	// 5. Admin queries at scale, on a fresh seeded database and server.
	if !cfg.wants(5) {
		return nil
	}
	logf("%s: seeding %d VMAs and %d audit events", driver, cfg.ScaleVMAs, cfg.ScaleEvents)
	sdir := filepath.Join(dir, "scale")
	os.MkdirAll(sdir, 0o700)
	sst, err := newStore(driver, cfg.MySQLDSN, sdir)
	if err != nil {
		return err
	}
	defer sst.drop()
	if err := seedScale(ctx, sst, cfg.ScaleVMAs, cfg.ScaleEvents); err != nil {
		return err
	}
	// The seeded audit rows carry no real chain; any key lets serve start.
	os.MkdirAll(filepath.Join(sdir, "data"), 0o700)
	if err := os.WriteFile(filepath.Join(sdir, "data", "audit.key"), []byte(strings.Repeat("0", 64)+"\n"), 0o600); err != nil {
		return err
	}
	ss, err := startServer(ctx, bins, sst, filepath.Join(sdir, "data"), "--no-migrate")
	if err != nil {
		return err
	}
	defer ss.stop()
	tokFile := filepath.Join(sdir, "data", "admin.token")
	omactl := func(args ...string) (time.Duration, error) {
		return timeCmd(5, bins.path("omactl"), append([]string{"--server", "http://" + ss.admin, "--token-file", tokFile}, args...)...)
	}
	active, err := omactl("active", "-o", "json")
	if err != nil {
		return err
	}
	audit, err := omactl("audit", "--vma", fmt.Sprintf("vma-%05d", cfg.ScaleVMAs/2), "--since", "24h", "-o", "json")
	if err != nil {
		return err
	}
	rep.add(Row{"5. admin queries (" + driver + ")", fmt.Sprintf("%d VMAs, %d audit events, median of 5 runs of the omactl binary", cfg.ScaleVMAs, cfg.ScaleEvents),
		fmt.Sprintf("`omactl active -o json` %s; `omactl audit --vma X --since 24h` %s", ms(active), ms(audit)),
		"targets 200 ms and 100 ms", fmt.Sprintf("%s and %s", ratio(float64(active), float64(200*time.Millisecond)), ratio(float64(audit), float64(100*time.Millisecond))), "≤ 200 ms, ≤ 100 ms"})
	return nil
}

// sshdReference measures OpenSSH sshd with m idle tunnels and returns row
// 4's reference and ratio cells; when sshd cannot be measured here they say
// why and fall back to the figure measured earlier on this kind of machine.
func sshdReference(ctx context.Context, bins Bins, m int, dir string, ours float64, logf func(string, ...any)) (ref, r string) {
	const quoted = "measured earlier on this kind of machine: 1.6-1.9 MiB per tunnel"
	quotedRatio := ratio(ours, 1.75*1024*1024) + " (ours / 1.75 MiB)"
	res, err := sshdIdleTunnels(ctx, bins, m, dir, logf)
	switch {
	case err != nil:
		logf("sshd: %v", err)
		return fmt.Sprintf("OpenSSH sshd: measurement failed (%s); %s", oneLine(err), quoted), quotedRatio
	case res.skipped != "":
		return fmt.Sprintf("OpenSSH sshd not measured: %s; %s", res.skipped, quoted), quotedRatio
	}
	return fmt.Sprintf("OpenSSH sshd (%s), same run: %.1f KiB per tunnel (%d tunnels with reverse forward, restricted authorized_keys lines, PSS growth of the listener and its per-connection processes)",
			res.version, float64(res.perTunnel)/1024, m),
		ratio(ours, float64(res.perTunnel)) + " (ours / sshd)"
}
