package bench

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	ostore "github.com/oma-enroll/oma-enroll/internal/store"
)

type vmaKey struct {
	priv ed25519.PrivateKey
	line string
}

func keys(n int) []vmaKey {
	out := make([]vmaKey, n)
	for i := range out {
		pub, priv, _ := sshkey.Generate(nil)
		out[i] = vmaKey{priv: priv, line: sshkey.AuthorizedKey(pub, "")}
	}
	return out
}

// codes asks the server for n pairing codes (not timed).
func (s *server) codes(n int) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				var pc api.PairingCodeResponse
				if err := s.admin_("POST", api.PathPairingCode, api.PairingCodeRequest{TTLSeconds: 3600}, &pc); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				out[i] = pc.PairingCode
			}
		}()
	}
	wg.Wait()
	return out, firstErr
}

// enrollOnce runs enroll + sign + verify over HTTPS.
func (s *server) enrollOnce(c *http2Client, code string, k vmaKey, name string) (string, string, error) {
	var er api.EnrollResponse
	if err := s.pub(c.Client, "POST", api.PathEnroll, "", api.EnrollRequest{PairingCode: code, VMAPublicKey: k.line, VMAName: name, VMAVersion: "bench"}, &er); err != nil {
		return "", "", err
	}
	ch, err := base64.StdEncoding.DecodeString(er.Challenge)
	if err != nil {
		return "", "", err
	}
	var vr api.VerifyResponse
	if err := s.pub(c.Client, "POST", api.PathVerify, "", api.VerifyRequest{EnrollmentID: er.EnrollmentID,
		Signature: base64.StdEncoding.EncodeToString(enroll.SignChallenge(k.priv, er.EnrollmentID, ch))}, &vr); err != nil {
		return "", "", err
	}
	return er.EnrollmentID, vr.PollToken, nil
}

type http2Client struct{ Client *http.Client }

// parallel runs n jobs on c workers and returns the wall time and each
// job's latency.
func parallel(c, n int, job func(i int) error) (time.Duration, durations, error) {
	lat := make(durations, n)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				t0 := time.Now()
				if err := job(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if err, _ := firstErr.Load().(error); err != nil {
		return wall, lat, err
	}
	return wall, lat, nil
}

// throughputServer measures complete enrollments per second over HTTPS
// with clients keep-alive connections.
func throughputServer(s *server, clients, n int) (float64, durations, error) {
	codes, err := s.codes(n)
	if err != nil {
		return 0, nil, err
	}
	ks := keys(n)
	c := &http2Client{Client: keepAliveClient(clients)}
	wall, lat, err := parallel(clients, n, func(i int) error {
		_, _, err := s.enrollOnce(c, codes[i], ks[i], fmt.Sprintf("bench-%d-%d", clients, i))
		return err
	})
	return float64(n) / wall.Seconds(), lat, err
}

// throughputFloor measures the same work through the service in-process,
// on a fresh database of the same kind.
func throughputFloor(ctx context.Context, st store, clients, n int) (float64, durations, error) {
	if err := ostore.MigrateUp(ctx, st.driver, st.dsn); err != nil {
		return 0, nil, err
	}
	db, err := ostore.Open(ctx, st.driver, st.dsn, ostore.Options{})
	if err != nil {
		return 0, nil, err
	}
	defer db.Close()
	svc := enroll.New(db, enroll.Config{}, make([]byte, 32), nil)
	codes := make([]string, n)
	for i := range codes {
		c, err := svc.CreatePairingCode(ctx, time.Hour, "", enroll.Meta{Actor: "bench"})
		if err != nil {
			return 0, nil, err
		}
		codes[i] = c.Code.Reveal()
	}
	ks := keys(n)
	meta := enroll.Meta{SourceIP: "127.0.0.1", UserAgent: "bench"}
	wall, lat, err := parallel(clients, n, func(i int) error {
		res, err := svc.Enroll(ctx, enroll.EnrollRequest{PairingCode: codes[i], PublicKey: ks[i].line, Name: fmt.Sprintf("floor-%d", i), Version: "bench"}, meta)
		if err != nil {
			return err
		}
		_, err = svc.Verify(ctx, res.EnrollmentID, enroll.SignChallenge(ks[i].priv, res.EnrollmentID, res.Challenge), meta)
		return err
	})
	return float64(n) / wall.Seconds(), lat, err
}

// approvalToVMA measures, for n enrollments, the time from an approve call
// returning to the VMA's waiting long poll returning.
func approvalToVMA(s, approver *server, n int) (durations, error) {
	const batch = 50 // stay under the per-IP long-poll bound
	var all durations
	for done := 0; done < n; done += batch {
		m := min(batch, n-done)
		codes, err := s.codes(m)
		if err != nil {
			return nil, err
		}
		ks := keys(m)
		c := &http2Client{Client: keepAliveClient(m + 4)}
		ids, toks := make([]string, m), make([]string, m)
		for i := range m {
			if ids[i], toks[i], err = s.enrollOnce(c, codes[i], ks[i], fmt.Sprintf("approve-%d", done+i)); err != nil {
				return nil, err
			}
		}
		returned := make([]time.Time, m)
		var wg sync.WaitGroup
		for i := range m {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var res api.ResultResponse
				s.pub(c.Client, "GET", api.PathResult+"?enrollment_id="+ids[i]+"&wait=60s", toks[i], nil, &res)
				returned[i] = time.Now()
			}()
		}
		time.Sleep(500 * time.Millisecond) // every long poll is waiting
		approved := make([]time.Time, m)
		for i := range m {
			if err := approver.admin_("POST", api.PathApprove+ids[i], nil, nil); err != nil {
				return nil, err
			}
			approved[i] = time.Now()
		}
		wg.Wait()
		for i := range m {
			all = append(all, returned[i].Sub(approved[i]))
		}
	}
	return all, nil
}

// seedScale fills a fresh database with vmas approved VMAs and events
// audit rows, directly in SQL (the content, not the chain, is what the
// queries read).
func seedScale(ctx context.Context, st store, vmas, events int) error {
	if err := ostore.MigrateUp(ctx, st.driver, st.dsn); err != nil {
		return err
	}
	db, err := sql.Open(st.driver, st.dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().UTC()
	ts := func(t time.Time) any {
		if st.driver == "sqlite" {
			return t.Format("2006-01-02 15:04:05.000000")
		}
		return t
	}
	insert := func(table, cols string, rows int, row func(i int) []any) error {
		ncol := len(strings.Split(cols, ","))
		ph := "(" + strings.TrimSuffix(strings.Repeat("?,", ncol), ",") + ")"
		for start := 0; start < rows; start += 500 {
			end := min(start+500, rows)
			var args []any
			var vals []string
			for i := start; i < end; i++ {
				args = append(args, row(i)...)
				vals = append(vals, ph)
			}
			if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" ("+cols+") VALUES "+strings.Join(vals, ","), args...); err != nil {
				return fmt.Errorf("seed %s: %w", table, err)
			}
		}
		return nil
	}
	id := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	if err := insert("vma_enrollments", "id,pairing_code_hash,vma_public_key,vma_name,vma_fingerprint,status,approved_by,approved_at,tunnel_port,created_at,updated_at", vmas, func(i int) []any {
		t := now.Add(-time.Duration(vmas-i) * time.Minute)
		return []any{id(i), fmt.Sprintf("%064x", i), "ssh-ed25519 AAAA", fmt.Sprintf("vma-%05d", i), fmt.Sprintf("SHA256:%043d", i), "approved", "admin", ts(t), 9081 + i, ts(t), ts(t)}
	}); err != nil {
		return err
	}
	if err := insert("vma_active_connections", "id,enrollment_id,vma_name,vma_fingerprint,connection_status,tunnel_port,last_seen_at,connected_at,created_at,updated_at", vmas, func(i int) []any {
		t := now.Add(-time.Duration(i%600) * time.Second)
		status := "disconnected"
		if i%3 == 0 {
			status = "connected"
		}
		return []any{fmt.Sprintf("10000000-0000-4000-8000-%012d", i), id(i), fmt.Sprintf("vma-%05d", i), fmt.Sprintf("SHA256:%043d", i), status, 9081 + i, ts(t), ts(t), ts(t), ts(t)}
	}); err != nil {
		return err
	}
	types := []string{"connection", "disconnection", "connection", "disconnection", "approval", "verification", "enrollment"}
	if err := insert("vma_connection_audit", "id,enrollment_id,event_type,vma_name,vma_fingerprint,source_ip,event_details,created_at,mac", events, func(i int) []any {
		v := i % vmas
		// Spread over 30 days, newest last.
		t := now.Add(-time.Duration(events-i) * (30 * 24 * time.Hour) / time.Duration(events))
		return []any{i + 1, id(v), types[i%len(types)], fmt.Sprintf("vma-%05d", v), fmt.Sprintf("SHA256:%043d", v), "203.0.113.7", "{}", ts(t), fmt.Sprintf("%064x", i)}
	}); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "UPDATE vma_audit_head SET last_id = ? WHERE id = 1", events)
	return err
}

// timeCmd runs a command runs times and returns the median wall time.
func timeCmd(runs int, name string, args ...string) (time.Duration, error) {
	var d durations
	for range runs {
		cmd := exec.Command(name, args...)
		cmd.Env = cleanEnv()
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%s %v: %v: %.300s", name, args, err, out)
		}
		d = append(d, time.Since(t0))
	}
	return d.pct(50), nil
}

// keygen times our key generation and writing beside ssh-keygen's, both
// as processes would do it: generate, encode, write the two files.
func keygen(n int, dir string) (ours, theirs time.Duration, err error) {
	t0 := time.Now()
	for i := range n {
		if _, err := sshkey.LoadOrGenerate(filepath.Join(dir, fmt.Sprintf("ours-%d", i)), "bench"); err != nil {
			return 0, 0, err
		}
	}
	ours = time.Since(t0) / time.Duration(n)
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		return ours, 0, nil
	}
	t0 = time.Now()
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("theirs-%d", i))
		os.MkdirAll(p, 0o700)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", filepath.Join(p, "id_ed25519")).CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("ssh-keygen: %v %s", err, out)
		}
	}
	theirs = time.Since(t0) / time.Duration(n)
	return ours, theirs, nil
}
