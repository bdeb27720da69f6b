package tunnel

// The TLS data path of the tunnel (issue 12): `vma-enroll tunnel` can carry
// each NBD connection as a TLS 1.3 stream of its own on the OMA's public
// port, instead of a channel of its SSH connection. x/crypto/ssh copies
// every packet it reads and runs all channels of a connection through one
// reader goroutine; a TLS stream has neither cost, and several streams use
// several cores.
//
// Protocol "oma-nbd/1": the VMA offers the ALPN name ALPNData, presents its
// enrolled Ed25519 key as a self-signed client certificate (vmaauth) and
// pins the OMA's TLS certificate as enrollment did. After the handshake
// the OMA checks the key against the approved enrollments, exactly as the
// SSH endpoint checks a login, and answers one line: "OK\n", or
// "ERR <reason>\n" and the end of the connection. After "OK" the stream
// is the NBD connection, byte for byte, to the endpoint's NBD target; the
// OMA closes it at revocation as it closes the SSH tunnels, and once its
// key was rotated away and is no longer accepted (endpoint recheck).
//
// This file is the protocol both ends share; the OMA serves it in
// endpoint (tlsdata.go), the VMA dials it in vmaclient (clientdata.go).

// ALPNData is the ALPN protocol name of the TLS data path.
const ALPNData = "oma-nbd/1"

// Answers of the OMA after the handshake of a data stream.
const (
	DataOK           = "OK\n"
	DataRefused      = "ERR refused"     // the key is not approved
	DataUnavailable  = "ERR unavailable" // the check failed; retry
	DataNoTarget     = "ERR target"      // the NBD target does not answer
	MaxDataLineBytes = 256               // the longest answer line a VMA reads
)
