// Package contract holds the values the OMA and the VMA must agree on, and
// the limits client and server must check alike, in one place
// (docs/design.md §6 and §10). It imports nothing of ours, so the domain,
// the wire, the server, the tunnel code and all three command lines can
// use it, the appliance's vma-enroll included.
package contract

import "time"

// Tunnel defaults (docs/design.md §6); each is configurable on the server.
const (
	// TunnelUser is the SSH user of every VMA tunnel.
	TunnelUser = "vma_tunnel"
	// NBDTarget is the OMA-side address the VMA's NBD forward reaches.
	NBDTarget = "127.0.0.1:10809"
	// VMANBDListen is the VMA-local listen address of the NBD forward.
	VMANBDListen = "127.0.0.1:10808"
	// VMAAPIPort is the port of the VMA API, the target of the reverse forward.
	VMAAPIPort = 8081
	// VMAAPITarget is the VMA-local target of the reverse forward.
	VMAAPITarget = "127.0.0.1:8081"
	// TunnelPortMin and TunnelPortMax bound the default pool of per-VMA
	// reverse ports on the OMA.
	TunnelPortMin = 9081
	TunnelPortMax = 9999
)

// MaxWait is the longest long poll of the result endpoint: the server
// refuses a longer wait and the client never asks for one.
const MaxWait = 60 * time.Second

// Limits of free text (docs/design.md §10), in bytes.
const (
	// MaxNoteBytes bounds a pairing code's note.
	MaxNoteBytes = 255
	// MaxTextBytes bounds approval notes and reject or revoke reasons.
	MaxTextBytes = 1024
)

// MaxBodyBytes caps every request body.
const MaxBodyBytes = 64 << 10

// Fleet limits (docs/fleet.md): multi-use pairing codes and labels.
const (
	// DefaultCodeUses is how many enrollments a pairing code allows when
	// the admin does not say (the single-use code of the design).
	DefaultCodeUses = 1
	// MaxCodeUses is the default ceiling on a pairing code's uses; the
	// server's max_code_uses setting may lower or raise it (up to
	// CodeUsesLimit).
	MaxCodeUses = 1000
	// CodeUsesLimit is the hard upper bound of any ceiling.
	CodeUsesLimit = 100000
	// MaxLabels bounds the labels of one code or one enrollment (per side:
	// the admin's and the VMA's).
	MaxLabels = 16
	// MaxLabelPrefixBytes, MaxLabelNameBytes and MaxLabelValueBytes bound
	// a label key's optional DNS prefix ("example.com/"), its name and its
	// value (Kubernetes: 253/63/63; the prefix is shorter here).
	MaxLabelPrefixBytes = 63
	MaxLabelNameBytes   = 63
	MaxLabelValueBytes  = 63
	// MaxSelectorBytes bounds a label selector (-l).
	MaxSelectorBytes = 1024
	// MaxBulkItems bounds the ids of one bulk decision.
	MaxBulkItems = 5000
	// MaxCIDRBytes bounds a pairing code's --from CIDR list.
	MaxCIDRBytes = 255
)
