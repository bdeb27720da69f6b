package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	srv "github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/testdb"
)

// The tests that are a script of commands and their expected output live
// in testdata/script/*.txtar (testscript, github.com/rogpeppe/go-internal:
// docs/development.md, "Tests"). The real binaries the package built are
// on PATH (run them with exec); three commands are ours:
//
//	oma-server-start [serve flags]
//	exits CODE PROGRAM [args...]
//	need PROGRAM INSTALL

// scriptValue is a key of testscript's Env.Values.
type scriptValue int

const (
	scriptT       scriptValue = iota // the script's testing.TB
	scriptBackend                    // the backend oma-server-start uses
)

// startsServer finds the scripts that start an oma-server.
var startsServer = regexp.MustCompile(`(?m)^oma-server-start\b`)

// TestScripts runs every script on SQLite, and those that start an
// oma-server (the only ones a database matters to) again on MariaDB when
// there is one (backends).
func TestScripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "script", "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata/script (%v)", err)
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		run := files
		if b.name != "sqlite" {
			run = nil
			for _, f := range files {
				if data, err := os.ReadFile(f); err == nil && startsServer.Match(data) {
					run = append(run, f)
				}
			}
			if len(run) == 0 {
				return
			}
		}
		testscript.Run(t, testscript.Params{
			Files:               run,
			RequireExplicitExec: true,
			RequireUniqueNames:  true,
			Setup: func(env *testscript.Env) error {
				env.Setenv("PATH", binDir+string(os.PathListSeparator)+env.Getenv("PATH"))
				env.Setenv("NO_COLOR", "1") // as testbin.Env
				env.Values[scriptT] = env.T().(testing.TB)
				env.Values[scriptBackend] = b
				return nil
			},
			Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
				"oma-server-start": scriptServerStart,
				"exits":            scriptExits,
				"need":             scriptNeed,
			},
		})
	})
}

// scriptServerStart is `oma-server-start [serve flags]`: an oma-server
// (testbin.StartServer) with its data directory $WORK/oma, its database on
// the script's backend (SQLite in the data directory, or a fresh MariaDB
// database), on free loopback ports, tunnel mode none unless a flag says
// otherwise (the flags come after the harness's: the last one wins). It
// is stopped when the script ends. The script gets the variables omactl
// and oma-server read (OMACTL_SERVER, OMACTL_TOKEN_FILE; OMA_DATA_DIR,
// OMA_DB_DRIVER, OMA_DB_DSN with MariaDB) and, for vma-enroll,
// SERVER_PUBLIC (host:port of the public listener) and SERVER_FINGERPRINT
// (the sha256: pin of its TLS key).
func scriptServerStart(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! oma-server-start")
	}
	if ts.Getenv("OMACTL_SERVER") != "" {
		ts.Fatalf("oma-server-start: one server per script")
	}
	t := ts.Value(scriptT).(testing.TB)
	b := ts.Value(scriptBackend).(backend)
	var dsn string
	if b.name == "mysql" {
		dsn = testdb.MySQL(t)
	}
	dir := filepath.Join(ts.Getenv("WORK"), "oma")
	s := testbin.StartServer(t, testbin.ServerOptions{Binary: bin("oma-server"), DataDir: dir, Driver: b.name, DSN: dsn, Args: args})
	ts.Defer(func() { s.Stop() })

	ts.Setenv("OMACTL_SERVER", s.AdminURL())
	ts.Setenv("OMACTL_TOKEN_FILE", s.Opts.TokenFile)
	ts.Setenv("OMA_DATA_DIR", dir)
	ts.Setenv("OMA_DB_DRIVER", b.name)
	if dsn != "" {
		ts.Setenv("OMA_DB_DSN", dsn)
	}
	ts.Setenv("SERVER_PUBLIC", s.Public)
	ts.Setenv("SERVER_FINGERPRINT", certFingerprint(ts, filepath.Join(dir, "tls.crt")))
}

// certFingerprint is the pin of the certificate in the PEM file path.
func certFingerprint(ts *testscript.TestScript, path string) string {
	block, _ := pem.Decode([]byte(ts.ReadFile(path)))
	if block == nil {
		ts.Fatalf("%s: no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	ts.Check(err)
	return srv.SPKIFingerprint(cert)
}

// scriptExits is `exits CODE PROGRAM [args...]`: exec that wants the exit
// status CODE (exec wants 0 and `! exec` any other). Its stdout and
// stderr are there for the stdout and stderr commands that follow.
func scriptExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROGRAM [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: CODE %q is not a number", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// scriptNeed is `need PROGRAM INSTALL`: the missing-dependency policy
// (testbin.Need) for a script that runs a tool the machine may lack, where
// INSTALL says how to get it ('apt-get install openssh-client'); testscript's
// [exec:PROGRAM] condition would skip silently, under CI too. A tool found
// only in an sbin directory is put on the script's PATH.
func scriptNeed(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: need PROGRAM INSTALL")
	}
	p := testbin.Need(ts.Value(scriptT).(testing.TB), args[1], args[0])
	if _, err := exec.LookPath(args[0]); err != nil {
		ts.Setenv("PATH", ts.Getenv("PATH")+string(os.PathListSeparator)+filepath.Dir(p))
	}
}
