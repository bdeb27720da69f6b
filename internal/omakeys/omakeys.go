// Package omakeys holds the OMA's own keys in its data directory (the SSH
// host key of the embedded endpoint, the public TLS certificate, and the
// next ones a rotation staged) and the watch that makes a running server
// use what `oma-server rotate` staged or switched (docs/rotation.md, "The
// OMA's own keys"). Used by oma-server only.
package omakeys

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/atomicfile"
	"github.com/oma-enroll/oma-enroll/internal/server"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// The OMA's own keys and their rotation (oma-server rotate,
// docs/rotation.md): the files in the data directory, and the watch that
// makes a running server use what rotate staged or switched.

// Files of the OMA's keys in the data directory.
const (
	FileHostKey     = "ssh_host_ed25519_key"
	FileHostKeyNext = "ssh_host_ed25519_key.next"
	FileTLSCert     = "tls.crt"
	FileTLSKey      = "tls.key"
	FileTLSNextCert = "tls-next.crt"
	FileTLSNextKey  = "tls-next.key"
	// FileRotation records the rotations under way (their overlap).
	FileRotation = "oma-rotation.json"
)

// Files names the key files of one OMA: the data directory, and the
// certificate --tls-cert/--tls-key name when given.
type Files struct {
	DataDir         string
	TLSCert, TLSKey string
}

func (f Files) Path(name string) string { return filepath.Join(f.DataDir, name) }

// tlsPair is the current certificate's files.
func (f Files) TLSPair() (cert, key string) {
	if f.TLSCert != "" {
		return f.TLSCert, f.TLSKey
	}
	return f.Path(FileTLSCert), f.Path(FileTLSKey)
}

func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// LoadSigner reads an OpenSSH Ed25519 private key.
func LoadSigner(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	priv, err := sshkey.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ssh.NewSignerFromKey(priv)
}

// hostKeys reads the current SSH host key and the staged next one (nil
// when no rotation is under way).
func (f Files) HostKeys() (cur, next ssh.Signer, err error) {
	if cur, err = LoadSigner(f.Path(FileHostKey)); err != nil {
		return nil, nil, err
	}
	if next, err = LoadSigner(f.Path(FileHostKeyNext)); errors.Is(err, fs.ErrNotExist) {
		return cur, nil, nil
	}
	return cur, next, err
}

// certs reads the current certificate and the staged next one (nil when
// no rotation is under way).
func (f Files) Certs() (cur tls.Certificate, next *tls.Certificate, err error) {
	c, k := f.TLSPair()
	if cur, err = server.LoadPair(c, k); err != nil {
		return cur, nil, err
	}
	if !Exists(f.Path(FileTLSNextCert)) {
		return cur, nil, nil
	}
	n, err := server.LoadPair(f.Path(FileTLSNextCert), f.Path(FileTLSNextKey))
	if err != nil {
		return cur, nil, err
	}
	return cur, &n, nil
}

// RotationState is oma-rotation.json: the rotations under way, by key.
type RotationState map[string]*RotationRecord

type RotationRecord struct {
	CurrentFingerprint string    `json:"current_fingerprint"`
	NextFingerprint    string    `json:"next_fingerprint"`
	StartedAt          time.Time `json:"started_at"`
	OverlapUntil       time.Time `json:"overlap_until"`
}

func (f Files) LoadRotation() RotationState {
	st := RotationState{}
	if data, err := os.ReadFile(f.Path(FileRotation)); err == nil {
		_ = json.Unmarshal(data, &st) // a damaged file only loses the overlap's end
	}
	return st
}

func (f Files) SaveRotation(st RotationState) error {
	for k, v := range st {
		if v == nil {
			delete(st, k)
		}
	}
	if len(st) == 0 {
		if err := os.Remove(f.Path(FileRotation)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(f.Path(FileRotation), append(data, '\n'), 0o600)
}

// HostKeyUser is the embedded SSH endpoint as the watch sees it.
type HostKeyUser interface {
	HostKeys() (current, next ssh.PublicKey)
	SetHostKeys(current, next ssh.Signer)
}

// CertUser is the server as the watch sees it.
type CertUser interface {
	SetTunnelHostKey(authorizedKey string)
	SetCertificates(current tls.Certificate, next *tls.Certificate) error
	Fingerprint() string
	NextFingerprint() string
}

// keyWatchEvery is how often a running server looks at its key files.
const keyWatchEvery = time.Second

// keyWatch applies the key files to a running server: a staged next key
// is announced (the SSH endpoint to its tunnels, self its certificate's
// pin), a switched one presented, within keyWatchEvery.
type keyWatch struct {
	files    Files
	endpoint HostKeyUser // nil unless the embedded tunnel mode
	srv      CertUser
	log      *slog.Logger

	sshStamp, tlsStamp string
	tlsPins            [2]string // the current and next pin last applied
}

// stamp identifies the state of files by size and modification time.
func stamp(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
		} else {
			fmt.Fprintf(&b, "%s:-;", p)
		}
	}
	return b.String()
}

// poll reloads the keys whose files changed.
func (w *keyWatch) poll() {
	if w.endpoint != nil {
		if st := stamp(w.files.Path(FileHostKey), w.files.Path(FileHostKeyNext)); st != w.sshStamp {
			cur, next, err := w.files.HostKeys()
			if err != nil {
				w.log.Warn("cannot read the SSH host keys; keeping the ones in use", "err", err)
			} else {
				w.sshStamp = st
				oldCur, oldNext := w.endpoint.HostKeys()
				w.endpoint.SetHostKeys(cur, next)
				w.srv.SetTunnelHostKey(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cur.PublicKey()))))
				if !sameSSHKey(oldCur, cur.PublicKey()) || (next == nil) != (oldNext == nil) || (next != nil && !sameSSHKey(oldNext, next.PublicKey())) {
					attrs := []any{"current", ssh.FingerprintSHA256(cur.PublicKey())}
					if next != nil {
						attrs = append(attrs, "next", ssh.FingerprintSHA256(next.PublicKey()))
					}
					w.log.Info("SSH host keys in use", attrs...)
				}
			}
		}
	}
	c, k := w.files.TLSPair()
	if st := stamp(c, k, w.files.Path(FileTLSNextCert), w.files.Path(FileTLSNextKey)); st != w.tlsStamp {
		cur, next, err := w.files.Certs()
		if err != nil {
			w.log.Warn("cannot read the TLS certificates; keeping the ones in use", "err", err)
			return
		}
		w.tlsStamp = st
		if err := w.srv.SetCertificates(cur, next); err != nil {
			w.log.Warn("cannot use the TLS certificates; keeping the ones in use", "err", err)
			return
		}
		pins := [2]string{w.srv.Fingerprint(), w.srv.NextFingerprint()}
		if pins == w.tlsPins {
			return
		}
		if w.tlsPins[0] != "" && pins[0] != w.tlsPins[0] && pins[0] != w.tlsPins[1] {
			w.log.Warn("the TLS certificate's key changed without a rotation: enrolled VMAs pinning the previous key refuse this one (stage a new certificate with 'oma-server rotate tls-cert --cert FILE --key FILE' instead)",
				"previous", w.tlsPins[0], "oma_fingerprint", pins[0])
		}
		w.tlsPins = pins
		w.log.Info("TLS certificate in use", "oma_fingerprint", pins[0], "oma_next_fingerprint", pins[1])
	}
}

func sameSSHKey(a, b ssh.PublicKey) bool {
	return a != nil && b != nil && string(a.Marshal()) == string(b.Marshal())
}

// run polls until ctx ends.
func (w *keyWatch) run(ctx context.Context) {
	t := time.NewTicker(keyWatchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.poll()
		}
	}
}

// Watch applies the key files now and then every keyWatchEvery until ctx
// ends; the channel is closed once it stopped (no key is applied after
// that).
func Watch(ctx context.Context, files Files, endpoint HostKeyUser, srv CertUser, log *slog.Logger) <-chan struct{} {
	w := &keyWatch{files: files, endpoint: endpoint, srv: srv, log: log}
	w.poll()
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	return done
}

// Repair finishes a switch that `oma-server rotate KEY --complete` began
// and a crash cut short, so that a server can start and rotate can run:
//
//   - the TLS certificate in the data directory is switched by renaming
//     tls-next.key over tls.key, then tls-next.crt over tls.crt; between
//     the two, tls.key no longer matches tls.crt. When tls-next.crt is
//     there without its key and matches tls.key, it is renamed over
//     tls.crt.
//   - with --tls-cert/--tls-key the next pair is written over those files
//     (key first), then the staged files are removed. When the key file
//     already holds the staged key but the certificate file does not match
//     it, the staged certificate is written over it and the staged files
//     removed.
//   - the SSH host key's public file follows its private key: a
//     ssh_host_ed25519_key.next.pub left without its private key is the
//     current key's and is renamed over ssh_host_ed25519_key.pub.
//
// It returns what it did (empty when there was nothing to finish).
func (f Files) Repair() ([]string, error) {
	var did []string
	nextCert, nextKey := f.Path(FileTLSNextCert), f.Path(FileTLSNextKey)
	certFile, keyFile := f.TLSPair()
	if Exists(nextCert) {
		if _, err := server.LoadPair(certFile, keyFile); err != nil && Exists(keyFile) {
			if _, err := server.LoadPair(nextCert, keyFile); err == nil {
				if f.TLSCert == "" {
					if err := os.Rename(nextCert, certFile); err != nil {
						return did, err
					}
				} else {
					data, err := os.ReadFile(nextCert)
					if err != nil {
						return did, err
					}
					if err := atomicfile.WriteFile(certFile, data, 0o644); err != nil {
						return did, err
					}
					for _, p := range []string{nextCert, nextKey} {
						if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
							return did, err
						}
					}
				}
				if err := atomicfile.SyncDir(f.DataDir); err != nil {
					return did, err
				}
				did = append(did, "finished the switch to the staged TLS certificate (a crash had cut it short)")
			}
		}
	}
	hostNext := f.Path(FileHostKeyNext)
	if Exists(hostNext+".pub") && !Exists(hostNext) {
		// Only when it is the current key's (a stage cut short leaves
		// another key's .pub: not ours to move).
		cur, err := LoadSigner(f.Path(FileHostKey))
		if err != nil {
			return did, nil
		}
		data, err := os.ReadFile(hostNext + ".pub")
		if err != nil {
			return did, err
		}
		if pub, _, _, _, err := ssh.ParseAuthorizedKey(data); err == nil && sameSSHKey(pub, cur.PublicKey()) {
			if err := os.Rename(hostNext+".pub", f.Path(FileHostKey)+".pub"); err != nil {
				return did, err
			}
			did = append(did, "finished the switch to the staged SSH host key's public file")
		}
	}
	return did, nil
}
