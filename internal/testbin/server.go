package testbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ServerOptions say how StartServer runs oma-server serve.
type ServerOptions struct {
	Binary     string // the oma-server binary (required)
	DataDir    string // --data-dir; "" for a fresh t.TempDir()
	Driver     string // --db-driver; "" for sqlite
	DSN        string // --db-dsn; "" for the server's default (<data-dir>/oma.db with sqlite)
	TunnelMode string // --tunnel-mode; "" for none
	LogFormat  string // --log-format; "" for text
	// TokenFile is the admin token oma-server writes, waited for before
	// the server counts as started; "" for <data-dir>/admin.token.
	TokenFile string
	Args      []string // more flags (--admin-tls, --audit-key-file …)
}

// Server is an oma-server serve process on two free loopback ports.
type Server struct {
	Opts          ServerOptions
	Admin, Public string // host:port of the admin and the public listener
	AdminTLS      bool   // the admin listener serves HTTPS (--admin-tls)
	Cmd           *exec.Cmd
	Log           *Buffer       // its stdout and stderr
	Done          chan struct{} // closed when the process has exited
	t             testing.TB
}

// StartServer runs oma-server serve with o on free loopback ports (trying
// other ports when the first are taken meanwhile), waits until its admin
// /health answers and its admin token exists, and stops it when the test
// ends (showing its log when the test failed).
func StartServer(t testing.TB, o ServerOptions) *Server {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Driver == "" {
		o.Driver = "sqlite"
	}
	if o.TunnelMode == "" {
		o.TunnelMode = "none"
	}
	if o.LogFormat == "" {
		o.LogFormat = "text"
	}
	if o.TokenFile == "" {
		o.TokenFile = filepath.Join(o.DataDir, "admin.token")
	}
	s := &Server{Opts: o, t: t, Log: &Buffer{}, AdminTLS: slices.Contains(o.Args, "--admin-tls")}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		s.Admin, s.Public = FreeAddr(t), FreeAddr(t)
		if err = s.Start(); err == nil {
			t.Cleanup(func() {
				s.Stop()
				if t.Failed() {
					t.Logf("oma-server log:\n%s", s.Log.String())
				}
			})
			return s
		}
	}
	t.Fatalf("oma-server did not start: %v\nlog:\n%s", err, s.Log.String())
	return nil
}

// Start starts the process on s.Admin and s.Public and waits until it
// answers (or has exited: then it returns why).
func (s *Server) Start() error {
	o := s.Opts
	args := []string{"serve",
		"--data-dir", o.DataDir,
		"--db-driver", o.Driver,
		"--admin-listen", s.Admin,
		"--public-listen", s.Public,
		"--public-host", "127.0.0.1",
		"--tunnel-mode", o.TunnelMode,
		"--log-format", o.LogFormat,
	}
	if o.DSN != "" {
		args = append(args, "--db-dsn", o.DSN)
	}
	args = append(args, o.Args...)
	s.Cmd = exec.Command(o.Binary, args...)
	s.Cmd.Env = Env()
	s.Cmd.Stdout, s.Cmd.Stderr = s.Log, s.Log
	if err := s.Cmd.Start(); err != nil {
		return err
	}
	s.Done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.Cmd, s.Done)
	if err := WaitHealthy(s.AdminURL()+"/health", o.TokenFile, s.Done); err != nil {
		s.Kill()
		return fmt.Errorf("%w (%v)", err, s.Cmd.ProcessState)
	}
	return nil
}

// Restart starts the process again on the same ports, data directory and
// database, after Stop or Kill (or SIGTERM first when it still runs); the
// ports may linger a moment, so it tries for about five seconds.
func (s *Server) Restart() {
	s.t.Helper()
	if !s.exited() {
		s.Stop()
	}
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.Start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("oma-server did not restart: %v\nlog:\n%s", err, s.Log.String())
}

// Stop ends the process with SIGTERM (SIGKILL after 15s) and returns nil
// when it exited cleanly (status 0 within the grace period).
func (s *Server) Stop() error {
	if s.Cmd == nil || s.Done == nil {
		return nil
	}
	if s.exited() {
		return exitErr(s.Cmd)
	}
	s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.Done:
		return exitErr(s.Cmd)
	case <-time.After(15 * time.Second):
		s.Kill()
		return errors.New("oma-server did not stop within 15s of SIGTERM")
	}
}

// Kill ends the process with SIGKILL and waits for it.
func (s *Server) Kill() {
	if s.exited() {
		return
	}
	s.Cmd.Process.Kill()
	<-s.Done
}

func (s *Server) exited() bool {
	select {
	case <-s.Done:
		return true
	default:
		return false
	}
}

func exitErr(cmd *exec.Cmd) error {
	if st := cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("oma-server exited with %v", st)
	}
	return nil
}

// AdminURL is the base URL of the admin listener.
func (s *Server) AdminURL() string {
	if s.AdminTLS {
		return "https://" + s.Admin
	}
	return "http://" + s.Admin
}

// PublicURL is the base URL of the public listener.
func (s *Server) PublicURL() string { return "https://" + s.Public }

// Token is the admin token the server wrote.
func (s *Server) Token() string {
	s.t.Helper()
	b, err := os.ReadFile(s.Opts.TokenFile)
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
