package vmaenroll

import (
	"context"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/client"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/tunnel/vmaclient"
)

// The OMA's own key rotation on the VMA's side (docs/rotation.md): during
// an overlap the OMA announces its next TLS certificate's pin (GET
// /api/v1/vma/self's oma_next_fingerprint) and its next SSH host key
// (announced and proved over the tunnel, internal/tunnel/vmaclient). vma-enroll
// records both in enrollment.json (and the host key in known_hosts for
// OpenSSH), trusts them beside the current ones, and makes them the
// current ones once the OMA presents them: no person on the VMA.

// EventTLSPinLearned is the tunnel's event (-o json) for a next TLS pin
// recorded, or the switch to it.
const EventTLSPinLearned vmaclient.EventType = "tls_pin_learned"

// omaPins returns the TLS pins a state trusts: the current one and, during
// a rotation, the next.
func omaPins(st *State) []string {
	pins := []string{st.OMAFingerprint}
	if st.OMANextFingerprint != "" {
		pins = append(pins, st.OMANextFingerprint)
	}
	return pins
}

// dirPins reads the trusted pins from enrollment.json at each call, so a
// long-running tunnel follows what it (or status) learned; st's are the
// fallback.
func dirPins(dir string, st *State) func() []string {
	return func() []string {
		if cur, err := loadState(dir); err == nil && cur != nil && cur.OMAFingerprint != "" {
			return omaPins(cur)
		}
		return omaPins(st)
	}
}

// learnOMAPins records what self said of the OMA's certificate. The answer
// came over a connection pinned to a trusted key, so it is the OMA's:
// its next pin is trusted from now on, and when the OMA presents the
// next certificate (its oma_fingerprint is our next pin) that becomes the
// pin. It returns a message when something changed.
func learnOMAPins(dir string, me *api.VMASelf, now time.Time) (string, error) {
	st, err := loadState(dir)
	if err != nil || st == nil || st.OMAFingerprint == "" || me == nil {
		return "", err
	}
	fp, err := client.NormalizeFingerprint(me.OMAFingerprint)
	if err != nil {
		return "", nil
	}
	next := ""
	if me.OMANextFingerprint != "" {
		if next, err = client.NormalizeFingerprint(me.OMANextFingerprint); err != nil {
			next = ""
		}
	}
	msg := ""
	switch {
	case fp == st.OMAFingerprint:
		if next == st.OMANextFingerprint || next == fp {
			return "", nil
		}
		if next != "" {
			msg = "the OMA announced the pin of its next TLS certificate " + next + ": trusted beside " + fp + " until the OMA switches"
		} else {
			msg = "the OMA dropped its next TLS certificate " + st.OMANextFingerprint + ": no longer trusted"
		}
	case st.OMANextFingerprint != "" && fp == st.OMANextFingerprint:
		msg = "the OMA switched to its next TLS certificate " + fp + " (announced before); " + st.OMAFingerprint + " is no longer trusted"
		st.OMAFingerprint = fp
		if next == fp {
			next = ""
		}
	default:
		return "", nil // not a certificate this VMA trusts: leave the pins alone
	}
	st.OMANextFingerprint = next
	if err := saveState(dir, st, now); err != nil {
		return "", err
	}
	return msg, nil
}

// saveOMAHostKeys records the tunnel's trusted OMA host keys in
// enrollment.json and known_hosts (for vma-enroll tunnel --openssh).
func saveOMAHostKeys(dir string, now func() time.Time) func(ssh.PublicKey, []ssh.PublicKey) error {
	return func(cur ssh.PublicKey, next []ssh.PublicKey) error {
		st, err := loadState(dir)
		if err != nil || st == nil || st.Tunnel == nil {
			return err
		}
		line := func(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }
		st.Tunnel.HostKey = line(cur)
		st.OMANextHostKeys = nil
		for _, k := range next {
			st.OMANextHostKeys = append(st.OMANextHostKeys, line(k))
		}
		if err := saveState(dir, st, now()); err != nil {
			return err
		}
		addr, err := parseOMA(st.OMA)
		if err != nil {
			return err
		}
		return vmaclient.WriteKnownHosts(vmaclient.VMAConfig{Dir: dir, EnrollmentID: st.EnrollmentID, OMAHost: addr.Host, OMAPort: addr.Port,
			Tunnel: *st.Tunnel, NextHostKeys: st.OMANextHostKeys})
	}
}

// Pin checks of a running tunnel: at each SSH connection (at most once a
// minute) and every pinCheckEvery, it asks self and records the pins.
const (
	pinCheckEvery    = 10 * time.Minute
	pinCheckMinPause = time.Minute
)

// watchOMAPins runs the tunnel's pin checks until ctx ends; kick asks for
// one now (a new SSH connection).
func watchOMAPins(ctx context.Context, dir string, now func() time.Time, emit func(vmaclient.Event)) (kick func()) {
	ch := make(chan struct{}, 1)
	go func() {
		t := time.NewTicker(pinCheckEvery)
		defer t.Stop()
		var last time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-ch:
				if !last.IsZero() && time.Since(last) < pinCheckMinPause {
					continue
				}
			}
			last = time.Now()
			checkOMAPins(ctx, dir, now, emit)
		}
	}()
	return func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func checkOMAPins(ctx context.Context, dir string, now func() time.Time, emit func(vmaclient.Event)) {
	st, err := loadState(dir)
	if err != nil || st == nil || st.OMAFingerprint == "" || st.Status != string(enroll.StatusApproved) {
		return
	}
	priv, err := readKey(keyPath(dir))
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	me, err := selfCall(ctx, st, priv)
	if err != nil {
		return // the tunnel says what is wrong with the OMA
	}
	msg, err := learnOMAPins(dir, me, now())
	switch {
	case err != nil:
		emit(vmaclient.Event{Type: EventTLSPinLearned, Reason: err.Error(), Message: "cannot record the OMA's TLS pins: " + err.Error()})
	case msg != "":
		emit(vmaclient.Event{Type: EventTLSPinLearned, Message: msg})
	}
}
