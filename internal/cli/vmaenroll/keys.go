package vmaenroll

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/atomicfile"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
)

// Key files of a rotation (docs/rotation.md): the new key is written to
// id_ed25519.next (and .next.pub) before the OMA hears of it, and becomes
// id_ed25519 only once the OMA confirmed the swap. Whatever step a crash
// interrupts, settleKeys finds the key that works: the next key if the OMA
// accepts it, else the current one.

const (
	keyFile     = "id_ed25519"
	nextKeyFile = "id_ed25519.next"
	keyLockFile = "id_ed25519.lock"
)

func keyPath(dir string) string     { return filepath.Join(dir, keyFile) }
func nextKeyPath(dir string) string { return filepath.Join(dir, nextKeyFile) }
func keyLockPath(dir string) string { return filepath.Join(dir, keyLockFile) }

func readKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	priv, err := sshkey.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return priv, nil
}

func fingerprintOf(priv ed25519.PrivateKey) string {
	return sshkey.Fingerprint(priv.Public().(ed25519.PublicKey))
}

// promoteNext makes id_ed25519.next this VMA's key: the .pub first, then
// the private key (each a rename, atomic), then enrollment.json's
// vma_fingerprint. A crash in between leaves either the next key in place
// (settleKeys promotes it again) or id_ed25519 ahead of enrollment.json
// (settleKeys records it).
func promoteNext(dir string, st *State, fp string) error {
	next := nextKeyPath(dir)
	if err := os.Rename(next+".pub", keyPath(dir)+".pub"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("promote the new key: %w", err)
	}
	if err := os.Rename(next, keyPath(dir)); err != nil {
		return fmt.Errorf("promote the new key: %w", err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return err
	}
	return recordKey(dir, st, fp)
}

// recordKey writes the key's fingerprint into enrollment.json.
func recordKey(dir string, st *State, fp string) error {
	if st.VMAFingerprint == fp {
		return nil
	}
	st.VMAFingerprint = fp
	return saveState(dir, st, nowUTC())
}

// dropNext removes a next key the OMA does not know.
func dropNext(dir string) error {
	err := os.Remove(nextKeyPath(dir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	os.Remove(nextKeyPath(dir) + ".pub")
	return atomicfile.SyncDir(dir)
}

// settleOutcome says what settleKeys did.
type settleOutcome int

const (
	settledNothing  settleOutcome = iota // one key, already recorded
	settledPromoted                      // an interrupted rotation's new key was accepted and promoted
	settledDropped                       // a next key the OMA does not know was removed
	settledRecorded                      // id_ed25519 was ahead of enrollment.json: recorded
	settledUnknown                       // the OMA did not answer: left as is
)

// settleKeys finishes or undoes an interrupted rotation. The caller holds
// the key lock. With a next key on disk it asks the OMA (GET self) with
// it: accepted, it is promoted; refused, and the current key is accepted,
// it is dropped. When id_ed25519 is not the key enrollment.json records
// (a crash between the promotion's steps) and the OMA accepts it, it is
// recorded.
func settleKeys(ctx context.Context, dir string, st *State) (settleOutcome, error) {
	next, err := readKey(nextKeyPath(dir))
	switch {
	case err == nil:
		if _, err := selfCall(ctx, st, next); err == nil {
			return settledPromoted, promoteNext(dir, st, fingerprintOf(next))
		} else if !errors.Is(err, errRefused) {
			return settledUnknown, err
		}
		cur, err := readKey(keyPath(dir))
		if err != nil {
			return settledUnknown, err
		}
		if _, err := selfCall(ctx, st, cur); err != nil {
			// Neither key works (revoked), or no answer: keep both.
			return settledUnknown, err
		}
		if err := dropNext(dir); err != nil {
			return settledUnknown, err
		}
		return settledDropped, recordKey(dir, st, fingerprintOf(cur))
	case errors.Is(err, fs.ErrNotExist):
	default:
		return settledUnknown, err
	}
	cur, err := readKey(keyPath(dir))
	if err != nil {
		return settledUnknown, err
	}
	fp := fingerprintOf(cur)
	if fp == st.VMAFingerprint {
		return settledNothing, nil
	}
	if _, err := selfCall(ctx, st, cur); err != nil {
		return settledUnknown, err
	}
	return settledRecorded, recordKey(dir, st, fp)
}

func nowUTC() time.Time { return time.Now().UTC() }

func atomicSyncDir(dir string) error { return atomicfile.SyncDir(dir) }
