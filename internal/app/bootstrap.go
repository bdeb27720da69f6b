package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/atomicfile"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/store"
)

// LoadOrCreateAuditKey reads the audit chain's HMAC key, or creates it when
// the audit table is still empty. A missing key with existing audit rows is
// an error: a new key would make the whole history look tampered with.
func LoadOrCreateAuditKey(ctx context.Context, path string, db *store.DB, log *slog.Logger) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("audit key %s is not 64 hex characters", path)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read audit key: %w", err)
	}
	headID, _, err := db.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	if headID > 0 {
		return nil, fmt.Errorf("audit key %s is missing but the database already holds %d audit events: copy audit.key from the data directory of another instance (or a backup) and start again", path, headID)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	log.Info("created the audit chain key; back it up and share it with every instance", "path", path)
	return key, nil
}

// ensureAdminToken creates the first admin token when there is none and
// writes it to <data-dir>/admin.token (0600). The token is never logged.
func ensureAdminToken(ctx context.Context, svc *enroll.Service, db *store.DB, dataDir string, log *slog.Logger) error {
	n, err := db.CountAdminTokens(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	tok, err := svc.CreateAdminToken(ctx, "admin")
	if err != nil {
		if enroll.ErrorCode(err) == enroll.CodeConflict {
			return nil // another instance created it first
		}
		return fmt.Errorf("create the first admin token: %w", err)
	}
	path := filepath.Join(dataDir, "admin.token")
	if err := atomicfile.WriteFile(path, []byte(tok.Reveal()+"\n"), 0o600); err != nil {
		return err
	}
	log.Info("created the first admin token (name \"admin\"); omactl reads it from the token file", "path", path)
	return nil
}

// adminTLSConfig is the admin listener's TLS configuration, or nil for
// plain HTTP (the default, which omactl uses).
func adminTLSConfig(cfg Config, public tls.Certificate) (*tls.Config, error) {
	cert := public
	switch {
	case cfg.AdminTLSCert != "":
		c, err := server.LoadOrCreateCertificate(cfg.AdminTLSCert, cfg.AdminTLSKey, "", nil)
		if err != nil {
			return nil, err
		}
		cert = c
	case !cfg.AdminTLS:
		return nil, nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: server.TLS12CipherSuites, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}, nil
}

// warnAdminListener warns when the admin listener is reachable from the
// network, louder when it speaks plain HTTP.
func warnAdminListener(log *slog.Logger, addr string, tlsOn bool) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || loopbackOnly(host) {
		return
	}
	if tlsOn {
		log.Warn("the admin listener is not on a loopback address; keep it on a private network", "admin_listen", addr)
		return
	}
	log.Warn("the admin listener is not on a loopback address and serves plain HTTP: admin tokens and web UI sessions cross the network unencrypted; "+
		"keep it on a private network and turn on --admin-tls (or --admin-tls-cert/--admin-tls-key)", "admin_listen", addr)
}

// loopbackOnly reports whether host ("" is every address) names loopback
// addresses only; a name is resolved, and one that does not resolve is
// taken as not loopback (the listener would not start anyway).
func loopbackOnly(host string) bool {
	if host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false
		}
	}
	return true
}
