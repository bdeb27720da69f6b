// Package tunnel is what both ends of the VMA–OMA tunnel share, and
// nothing else: the SSH algorithm lists (algorithms.go), the bulk copy
// buffers and helpers of the data path (copy.go), the protocol of the TLS
// data path (dataproto.go) and LoopbackHost. The OMA's side is package
// tunnel/endpoint (embedded mode) or tunnel/sshdkeys (openssh mode), both
// linked by oma-server; the VMA's side is tunnel/vmaclient, linked by
// vma-enroll. Its tests run both ends against each other: the embedded
// endpoint with OpenSSH and with the native client.
package tunnel
