package e2e

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// Kill -9 of oma-server and of vma-enroll at each step of a rotation
// (issue 16), with the real binaries on both stores: after the restart or
// the rerun the VMA has exactly one working key, and the audit holds a
// key_rotation event exactly when the OMA's key changed.

// setOMA points the VMA of dir at addr (enrollment.json's "oma"), the
// rest of the file as it is, and returns the address it had.
func setOMA(t *testing.T, dir, addr string) (was string) {
	t.Helper()
	path := filepath.Join(dir, "enrollment.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(st["oma"], &was)
	st["oma"], _ = json.Marshal(addr)
	if data, err = json.MarshalIndent(st, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return was
}

// rotationEvents lists the key_rotation events of name as "old>new".
func (s *server) rotationEvents(name string) []string {
	s.t.Helper()
	var audit []struct {
		EventType string         `json:"event_type"`
		Details   map[string]any `json:"event_details"`
	}
	s.omactlJSON(&audit, "audit", "--vma", name, "--type", "key_rotation", "--limit", "0") // oldest first
	var out []string
	for _, ev := range audit {
		if ev.EventType == "key_rotation" {
			o, _ := ev.Details["old_fingerprint"].(string)
			n, _ := ev.Details["new_fingerprint"].(string)
			out = append(out, o+">"+n)
		}
	}
	return out
}

// mysqlBlocked waits until n connections to the test's database run a
// statement like like (blocked: the test holds the lock it needs; the
// MariaDB server may be shared with other tests).
func mysqlBlocked(t *testing.T, db *sql.DB, like string, n int) {
	t.Helper()
	eventually(t, 20*time.Second, "the rotation's transaction to wait for the test's lock", func() bool {
		var got int
		err := db.QueryRow(`SELECT COUNT(*) FROM information_schema.processlist
			WHERE db = DATABASE() AND id <> CONNECTION_ID() AND command = 'Query' AND info LIKE ?`, like).Scan(&got)
		if err != nil {
			t.Logf("processlist: %v", err)
		}
		return err == nil && got >= n
	})
}

// dirtyKey is the key fingerprint of id as MariaDB holds it, uncommitted
// writes included (READ UNCOMMITTED).
func dirtyKey(t *testing.T, db *sql.DB, id string) string {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelReadUncommitted, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var fp string
	if err := tx.QueryRow(`SELECT vma_fingerprint FROM vma_enrollments WHERE id = ?`, id).Scan(&fp); err != nil {
		t.Fatal(err)
	}
	return fp
}

// TestRotateServerCrash: oma-server killed with SIGKILL at each step of a
// `vma-enroll rotate`:
//   - before the request reached it (the OMA is stopped with SIGSTOP, so
//     the connection waits in the kernel's accept queue);
//   - inside the rotation's transaction, after it wrote the new key and the
//     rotation record (MariaDB only: the test holds the audit chain's head
//     row FOR UPDATE, the transaction's last write, sees the statement wait
//     in information_schema.processlist and the new key uncommitted with a
//     READ UNCOMMITTED read; a SQLite writer cannot be paused from outside
//     at that point, and SQLite's own atomic commit is what covers it);
//   - after the commit, before the VMA got the answer (a proxy between
//     them holds every byte the OMA sends once the database shows the new
//     key).
//
// Each time vma-enroll exits 1 (the outcome is unknown, run it again) and
// keeps id_ed25519.next; after the restart the database has the new key
// and one more key_rotation event exactly when the commit happened; the
// tunnel's start settles the keys and connects with the one the OMA holds;
// the other key is refused; a later rotation works and the audit chain
// verifies.
func TestRotateServerCrash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, nbdListen, tport := startTunnelServer(t, b)
		const name = "vma-rot-oma-crash"
		dir := s.enrolled(name)
		id, _, _ := readState(t, dir)
		db := s.sqlDB()
		proxy := newRotProxy(t, s.public)
		key := filepath.Join(dir, "id_ed25519")
		oma := setOMA(t, dir, s.public) // enrolled with s.public: unchanged

		steps := []struct {
			name      string
			committed bool
			mysql     bool // only MariaDB can hold the transaction open from outside
			// crash starts `vma-enroll rotate` (v), kills oma-server at
			// the step, and returns v; before is the current key.
			crash func(t *testing.T, before string) *vma
		}{
			{name: "before the request reached the OMA", crash: func(t *testing.T, before string) *vma {
				v := startRotateStopped(t, s, dir)
				s.Kill() // SIGKILL ends a stopped process too
				return v
			}},
			{name: "inside the rotation's transaction", mysql: true, crash: func(t *testing.T, before string) *vma {
				lock, err := db.Begin()
				if err != nil {
					t.Fatal(err)
				}
				defer lock.Rollback()
				var lastID int64
				if err := lock.QueryRow(`SELECT last_id FROM vma_audit_head WHERE id = 1 FOR UPDATE`).Scan(&lastID); err != nil {
					t.Fatal(err)
				}
				v := startVMA(t, dir, "rotate")
				// The audit event is the transaction's last write: it
				// waits for the head row, the new key written and not
				// committed.
				mysqlBlocked(t, db, "%FROM vma_audit_head%FOR UPDATE%", 1)
				if k := dirtyKey(t, db, id); k == before || dbKey(db, id) != before {
					t.Fatalf("the waiting transaction: uncommitted key %s, committed %s (was %s)", k, dbKey(db, id), before)
				}
				s.Kill()
				lock.Rollback()
				// The dead server's session sees its client gone and
				// rolls back.
				eventually(t, 20*time.Second, "the killed server's transaction to be rolled back", func() bool {
					return dirtyKey(t, db, id) == before
				})
				return v
			}},
			{name: "after the commit, before the answer", committed: true, crash: func(t *testing.T, before string) *vma {
				held := proxy.holdWhen(func() bool { k := dbKey(db, id); return k != "" && k != before })
				setOMA(t, dir, proxy.addr)
				v := startVMA(t, dir, "rotate")
				v.reach(held, "the OMA's commit of the rotation")
				s.Kill()
				proxy.reset()
				return v
			}},
		}
		for _, step := range steps {
			if step.mysql && b.name != "mysql" {
				continue
			}
			t.Logf("kill -9 of oma-server %s", step.name)
			before := keyFP(t, key)
			events := s.rotationEvents(name)
			v := step.crash(t, before)
			r := v.wait(30 * time.Second)
			setOMA(t, dir, oma)
			if r.code != 1 || !strings.Contains(r.stderr, "run vma-enroll rotate again") {
				t.Fatalf("%s: vma-enroll rotate: %s", step.name, r)
			}
			next := filepath.Join(t.TempDir(), "next")
			copyFile(t, filepath.Join(dir, "id_ed25519.next"), next) // kept: the outcome is unknown
			nextFP := keyFP(t, next)
			if got := keyFP(t, key); got != before {
				t.Fatalf("%s: id_ed25519 changed to %s without an answer", step.name, got)
			}
			s.Restart()

			// The database: the new key and its event iff committed.
			want, other := before, next
			if step.committed {
				want, other = nextFP, filepath.Join(t.TempDir(), "before")
				copyFile(t, key, other)
			}
			if got := dbKey(db, id); got != want {
				t.Fatalf("%s: the OMA holds %s, want %s", step.name, got, want)
			}
			got := s.rotationEvents(name)
			if n := len(events); step.committed {
				if len(got) != n+1 || got[n] != before+">"+nextFP {
					t.Fatalf("%s: key_rotation events %v, want %v + %s>%s", step.name, got, events, before, nextFP)
				}
			} else if len(got) != n {
				t.Fatalf("%s: key_rotation events %v, want %v (nothing committed)", step.name, got, events)
			}

			// The tunnel's start settles the keys and connects with the
			// one the OMA holds.
			tun := startVMA(t, dir, "tunnel", "-o", "json")
			waitTunnel(t, s, tun, 1)
			eventually(t, 10*time.Second, "the tunnel on the key the OMA holds", func() bool {
				var active []api.Connection
				s.omactlJSON(&active, "active")
				return len(active) == 1 && active[0].VMAFingerprint == want && active[0].ConnectionStatus == "connected"
			})
			checkForwards(t, nbdListen, tport, "after the crash "+step.name)
			tun.cmd.Process.Signal(syscall.SIGTERM)
			tun.wait(15 * time.Second)
			if _, err := os.Stat(filepath.Join(dir, "id_ed25519.next")); !os.IsNotExist(err) {
				t.Fatalf("%s: id_ed25519.next after the tunnel settled the keys: %v", step.name, err)
			}
			if _, fp, _ := readState(t, dir); fp != want || keyFP(t, key) != want {
				t.Fatalf("%s: enrollment.json records %s, id_ed25519 is %s, want %s", step.name, fp, keyFP(t, key), want)
			}

			// Exactly one working key.
			if st := statusWith(t, dir, key); st != "approved" {
				t.Fatalf("%s: status with the kept key: %s", step.name, st)
			}
			if st := statusWith(t, dir, other); st != "revoked" {
				t.Fatalf("%s: status with the other key: %s, want refused (revoked)", step.name, st)
			}

			// A later rotation works.
			rr := rotate(t, dir)
			if rr.Result != "rotated" || rr.PreviousKeyFingerprint != want {
				t.Fatalf("%s: the next rotation: %+v (key was %s)", step.name, rr, want)
			}
			if got := s.rotationEvents(name); len(got) == 0 || got[len(got)-1] != want+">"+rr.KeyFingerprint {
				t.Fatalf("%s: key_rotation events %v after the next rotation", step.name, got)
			}
		}
		if r := s.omactl("audit", "verify"); r.code != 0 {
			t.Fatalf("audit verify: %s", r)
		}
	})
}

// TestRotateVMACrash: vma-enroll rotate killed with SIGKILL at the steps
// TestRotateCrash does not reach with a real kill:
//   - after the OMA committed, before the answer reached it (a proxy holds
//     the OMA's answer): the rerun finds the OMA accepts the next key and
//     reports the rotation recovered;
//   - after the promotion (id_ed25519 is the new key, enrollment.json
//     records it), before its check with the new key (the proxy never
//     connects that check): the OMA still accepts the previous key (its
//     grace) until the tunnel connects with the new one, then refuses it;
//
// and the disk state of a kill between the promotion's renames and the
// write of enrollment.json (id_ed25519 new, enrollment.json the old
// fingerprint, rebuilt from a real rotation): the next rotate records the
// key and rotates from it. Each time one key works and the audit holds one
// key_rotation event per swap.
func TestRotateVMACrash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s, nbdListen, tport := startTunnelServer(t, b)
		const name = "vma-rot-vma-crash"
		dir := s.enrolled(name)
		id, _, _ := readState(t, dir)
		db := s.sqlDB()
		proxy := newRotProxy(t, s.public)
		key := filepath.Join(dir, "id_ed25519")

		// 1. Killed after the OMA's commit, before its answer.
		k0, old := keyFP(t, key), saveKey(t, key)
		held := proxy.holdWhen(func() bool { k := dbKey(db, id); return k != "" && k != k0 })
		oma := setOMA(t, dir, proxy.addr)
		v := startVMA(t, dir, "rotate")
		v.reach(held, "the OMA's commit of the rotation")
		v.cmd.Process.Kill()
		<-v.done
		proxy.reset()
		setOMA(t, dir, oma)
		k1 := dbKey(db, id)
		if got := keyFP(t, filepath.Join(dir, "id_ed25519.next")); got != k1 || keyFP(t, key) != k0 {
			t.Fatalf("after kill -9 past the commit: id_ed25519.next %s, id_ed25519 %s; the OMA holds %s", got, keyFP(t, key), k1)
		}
		r := runBin(t, "vma-enroll", "rotate", "--config-dir", dir, "-o", "json")
		if r.code != 0 || !strings.Contains(r.stdout, `"result": "recovered"`) || !strings.Contains(r.stdout, k1) {
			t.Fatalf("rerun after kill -9 past the commit: %s", r)
		}
		if st := statusWith(t, dir, old); st != "revoked" {
			t.Fatalf("the previous key after the recovery: %s, want refused", st)
		}
		if got := s.rotationEvents(name); len(got) != 1 || got[0] != k0+">"+k1 {
			t.Fatalf("key_rotation events %v, want [%s>%s]", got, k0, k1)
		}

		// 2. Killed after the promotion, before the check with the new key.
		old = saveKey(t, key)
		blackholed := proxy.blackholeAfterNext(1) // the rotation's request; not the check after it
		setOMA(t, dir, proxy.addr)
		v = startVMA(t, dir, "rotate")
		v.reach(blackholed, "its check with the new key")
		k2 := dbKey(db, id)
		if _, fp, _ := readState(t, dir); fp != k2 || keyFP(t, key) != k2 {
			t.Fatalf("checking with the new key before the promotion: enrollment.json %s, id_ed25519 %s, the OMA %s", fp, keyFP(t, key), k2)
		}
		v.cmd.Process.Kill()
		<-v.done
		proxy.reset()
		setOMA(t, dir, oma)
		// The new key was never used: the previous one is in its grace.
		rep := rotVMAStatus(t, withKey(t, dir, old))
		if rep.Self == nil || rep.Self.AuthenticatedWith != "previous" || rep.Self.KeyFingerprint != k2 {
			t.Fatalf("the previous key before the new one was used: %+v self %+v", rep, rep.Self)
		}
		tun := startVMA(t, dir, "tunnel", "-o", "json")
		waitTunnel(t, s, tun, 1)
		checkForwards(t, nbdListen, tport, "after kill -9 past the promotion")
		tun.cmd.Process.Signal(syscall.SIGTERM)
		tun.wait(15 * time.Second)
		if st := statusWith(t, dir, old); st != "revoked" {
			t.Fatalf("the previous key once the tunnel used the new one: %s, want refused", st)
		}

		// 3. Killed between the renames and enrollment.json's update.
		state, _ := os.ReadFile(filepath.Join(dir, "enrollment.json"))
		rr := rotate(t, dir)
		k3 := rr.KeyFingerprint
		if err := os.WriteFile(filepath.Join(dir, "enrollment.json"), state, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, fp, _ := readState(t, dir); fp != k2 || keyFP(t, key) != k3 {
			t.Fatalf("rebuilt state: enrollment.json %s (want %s), id_ed25519 %s (want %s)", fp, k2, keyFP(t, key), k3)
		}
		rr = rotate(t, dir)
		if rr.Result != "rotated" || rr.PreviousKeyFingerprint != k3 {
			t.Fatalf("rotate after a kill inside the promotion: %+v, want rotated from %s", rr, k3)
		}
		if rep := rotVMAStatus(t, dir); rep.Self == nil || rep.Self.KeyFingerprint != rr.KeyFingerprint || rep.VMAFingerprint != rr.KeyFingerprint {
			t.Fatalf("status after it: %+v", rep)
		}
		want := []string{k0 + ">" + k1, k1 + ">" + k2, k2 + ">" + k3, k3 + ">" + rr.KeyFingerprint}
		if got := s.rotationEvents(name); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("key_rotation events %v, want %v", got, want)
		}
		if r := s.omactl("audit", "verify"); r.code != 0 {
			t.Fatalf("audit verify: %s", r)
		}
	})
}

// TestRotateConcurrent: two vma-enroll rotate on one config directory at
// once (the first holds id_ed25519.lock while the OMA, stopped with
// SIGSTOP, has not answered): the second exits 1 at once saying another
// rotation runs, the first rotates, one key works. Then two rotation
// requests from the same key on two connections at once (a cloned VMA;
// on MariaDB both wait on the test's lock of the enrollment row, so they
// really overlap): exactly one is taken, the other gets 409 wrong_state,
// and the audit holds one key_rotation event for them.
func TestRotateConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := startServer(t, b)
		const name = "vma-rot-race"
		dir := s.enrolled(name)
		id, k0, pin := readState(t, dir)
		db := s.sqlDB()
		old := saveKey(t, filepath.Join(dir, "id_ed25519"))

		first := startRotateStopped(t, s, dir, "-o", "json")
		r := runBin(t, "vma-enroll", "rotate", "--config-dir", dir, "-o", "json")
		s.Cmd.Process.Signal(syscall.SIGCONT)
		if r.code != 1 || !strings.Contains(r.stderr, "another vma-enroll rotate is running") || !strings.Contains(r.stdout, `"exit_code": 1`) {
			t.Fatalf("the second rotate while the first runs: %s", r)
		}
		r = first.wait(30 * time.Second)
		if r.code != 0 || !strings.Contains(r.stdout, `"result": "rotated"`) {
			t.Fatalf("the first rotate: %s", r)
		}
		k1 := dbKey(db, id)
		if rep := rotVMAStatus(t, dir); rep.Self == nil || rep.Self.KeyFingerprint != k1 || rep.VMAFingerprint != k1 || k1 == k0 {
			t.Fatalf("after the two rotates: %+v (the OMA holds %s)", rep, k1)
		}
		if st := statusWith(t, dir, old); st != "revoked" {
			t.Fatalf("the rotated-away key: %s, want refused", st)
		}

		// Two requests from the current key at once.
		cur := readPriv(t, filepath.Join(dir, "id_ed25519"))
		var lock *sql.Tx
		if b.name == "mysql" {
			var err error
			if lock, err = db.Begin(); err != nil {
				t.Fatal(err)
			}
			defer lock.Rollback()
			var fp string
			if err := lock.QueryRow(`SELECT vma_fingerprint FROM vma_enrollments WHERE id = ? FOR UPDATE`, id).Scan(&fp); err != nil {
				t.Fatal(err)
			}
		}
		answers := make(chan rawAnswer, 2)
		var keys [2]string
		for i := range keys {
			_, next, _ := sshkey.Generate(nil)
			keys[i] = writeKey(t, next)
			c := mtls(t, s, pin, cur)
			defer c.Close()
			req := rotateRequest(t, c, id, k1, next, nil)
			go func() { answers <- sendRaw(c, req) }()
		}
		if lock != nil {
			mysqlBlocked(t, db, "%FROM vma_enrollments%FOR UPDATE%", 2) // both rotations wait for the row
			lock.Rollback()
		}
		won, lost := 0, 0
		for range keys {
			a := <-answers
			switch {
			case a.err != nil:
				t.Fatalf("concurrent rotation: %v", a.err)
			case a.code == 200:
				won++
			case a.code == 409 && a.ec == "wrong_state":
				lost++
			default:
				t.Fatalf("concurrent rotation: %d %s", a.code, a.ec)
			}
		}
		if won != 1 || lost != 1 {
			t.Fatalf("two rotations from one key at once: %d taken, %d refused; want 1 and 1", won, lost)
		}
		k2 := dbKey(db, id)
		winner, loser := keys[0], keys[1]
		if keyFP(t, winner) != k2 {
			winner, loser = loser, winner
		}
		if keyFP(t, winner) != k2 {
			t.Fatalf("the OMA holds %s, neither of the new keys", k2)
		}
		if st := statusWith(t, dir, winner); st != "approved" {
			t.Fatalf("the winning key: %s", st)
		}
		if st := statusWith(t, dir, loser); st != "revoked" {
			t.Fatalf("the losing key: %s, want refused", st)
		}
		want := []string{k0 + ">" + k1, k1 + ">" + k2}
		if got := s.rotationEvents(name); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("key_rotation events %v, want %v", got, want)
		}
	})
}

// writeKey writes priv in OpenSSH format to a new file and returns its path.
func writeKey(t *testing.T, priv ed25519.PrivateKey) string {
	t.Helper()
	data, err := sshkey.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
