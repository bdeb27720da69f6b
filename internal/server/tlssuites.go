package server

import "crypto/tls"

// TLS12CipherSuites are the only TLS 1.2 suites the public port offers:
// forward-secret AEAD ones (AES-GCM and ChaCha20-Poly1305 with ECDHE), for
// ECDSA certificates (the self-signed one) and RSA ones (--tls-cert). Go's
// defaults add CBC suites with HMAC-SHA1, which testssl.sh flags as
// potentially LUCKY13 (issue 13 item 12). TLS 1.3 suites are AEAD by
// definition and not configurable.
var TLS12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}
