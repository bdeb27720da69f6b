package store

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

var storeTables = []string{"admin_tokens", "vma_active_connections", "vma_audit_head",
	"vma_connection_audit", "vma_enrollments", "vma_key_expiries", "vma_key_rotations", "vma_pairing_codes"}

// tables lists the store's tables present in the database of dsn.
func tables(t *testing.T, driver, dsn string) []string {
	t.Helper()
	s := mustOpenDSN(t, driver, dsn)
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!' AND name <> 'schema_migrations'`
	if driver == DriverMySQL {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name <> 'schema_migrations'`
	}
	names := []string{}
	if err := s.r.SelectContext(context.Background(), &names, q); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return names
}

func wantVersion(t *testing.T, driver, dsn string, want uint) {
	t.Helper()
	v, dirty, err := MigrateStatus(context.Background(), driver, dsn)
	if err != nil {
		t.Fatalf("MigrateStatus: %v", err)
	}
	if v != want || dirty {
		t.Fatalf("MigrateStatus = %d, dirty %v; want %d, clean", v, dirty, want)
	}
}

// TestMigrations: up → down → up on an empty database, each step leaving
// exactly the expected tables, and the store working afterwards.
func TestMigrations(t *testing.T) {
	forEachDriver(t, false, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		latest, err := LatestVersion(driver)
		if err != nil || latest < 1 {
			t.Fatalf("LatestVersion = %d, %v; want at least 1", latest, err)
		}
		wantVersion(t, driver, dsn, 0)
		for round := 1; round <= 2; round++ {
			if err := MigrateUp(ctx, driver, dsn); err != nil {
				t.Fatalf("round %d: MigrateUp: %v", round, err)
			}
			wantVersion(t, driver, dsn, latest)
			if got := tables(t, driver, dsn); !equalStrings(got, storeTables) {
				t.Fatalf("round %d: tables after up = %v, want %v", round, got, storeTables)
			}
			// Up again is a no-op.
			if err := MigrateUp(ctx, driver, dsn); err != nil {
				t.Fatalf("round %d: second MigrateUp: %v", round, err)
			}
			// The store works on the migrated schema.
			s := mustOpenDSN(t, driver, dsn)
			svc, _ := newService(t, s)
			approved(t, svc, "vma-a")
			wantChainOK(t, svc)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := MigrateDown(ctx, driver, dsn); err != nil {
				t.Fatalf("round %d: MigrateDown: %v", round, err)
			}
			wantVersion(t, driver, dsn, 0)
			if got := tables(t, driver, dsn); len(got) != 0 {
				t.Fatalf("round %d: tables after down = %v, want none", round, got)
			}
		}
		if err := MigrateUp(ctx, driver, dsn); err != nil {
			t.Fatalf("final MigrateUp: %v", err)
		}
		if err := Migrate(ctx, driver, dsn, "sideways"); err == nil {
			t.Errorf("Migrate(sideways) = nil, want an error")
		}
	})
}

// TestMigrateWhileOpen: migrating a database that a store has open and is
// writing to works (the server migrates at start, a second instance or the
// CLI may do it while one runs).
func TestMigrateWhileOpen(t *testing.T) {
	forEachDriver(t, true, func(t *testing.T, driver, dsn string) {
		s := mustOpenDSN(t, driver, dsn)
		svc, _ := newService(t, s)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 20 {
				if _, err := svc.CreatePairingCode(context.Background(), 0, "", admin); err != nil {
					t.Errorf("CreatePairingCode while migrating: %v", err)
					return
				}
			}
		}()
		for range 5 {
			if err := MigrateUp(context.Background(), driver, dsn); err != nil {
				t.Errorf("MigrateUp while open: %v", err)
			}
			if _, _, err := MigrateStatus(context.Background(), driver, dsn); err != nil {
				t.Errorf("MigrateStatus while open: %v", err)
			}
		}
		<-done
		wantChainOK(t, svc)
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The active list walks the index of migration 0006 in its order: SQLite
// sorts nothing (ten thousand rows spilled their sort to a temporary file).
func TestActiveListSortsNothing(t *testing.T) {
	s := mustOpen(t, DriverSQLite)
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+listConnectionsSQL(dialectSQLite), string(enroll.StatusApproved))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	all := strings.Join(plan, "\n")
	if strings.Contains(all, "TEMP B-TREE") || !strings.Contains(all, "idx_vma_enrollments_status_name") {
		t.Fatalf("the active list's plan sorts or misses the index:\n%s", all)
	}
}
