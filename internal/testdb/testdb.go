// Package testdb gives tests real databases: a temporary SQLite file, or a
// fresh, uniquely named database on the MariaDB/MySQL server named by
// OMA_TEST_MYSQL_DSN (dropped when the test ends). It is imported by tests
// only and imports nothing of ours but testbin, so the store's own tests can use it.
package testdb

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/oma-enroll/oma-enroll/internal/testbin"
)

// Env names the variable holding the DSN of a MariaDB/MySQL server whose
// user may create and drop databases.
const Env = "OMA_TEST_MYSQL_DSN"

// Drivers are the stores every storage test runs against.
var Drivers = []string{"sqlite", "mysql"}

// DSN returns the DSN of a fresh, empty database of driver. Without
// OMA_TEST_MYSQL_DSN a mysql test is skipped, or fails under CI (testbin.Missing).
func DSN(t testing.TB, driver string) string {
	t.Helper()
	switch driver {
	case "sqlite":
		return filepath.Join(t.TempDir(), "oma.db")
	case "mysql":
		return MySQL(t)
	}
	t.Fatalf("unknown driver %q", driver)
	return ""
}

// MySQL creates an empty database on the server of OMA_TEST_MYSQL_DSN and
// returns its DSN.
func MySQL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(Env)
	if base == "" {
		testbin.Missing(t, "MariaDB/MySQL tests need %s (e.g. %s='root@tcp(127.0.0.1:3306)/oma_test'; .ci/run sets it)", Env, Env)
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	// A generated name, [a-z0-9_] only, so it can be written into the DDL
	// (identifiers cannot be parameters).
	name := "oma_t_" + hex.EncodeToString(b[:])
	root := cfg.Clone()
	root.DBName = ""
	exec := func(stmt string) error {
		db, err := sql.Open("mysql", root.FormatDSN())
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.Exec(stmt)
		return err
	}
	if err := exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("create test database (is MariaDB running? .ci/run starts it): %v", err)
	}
	t.Cleanup(func() {
		if err := exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}
