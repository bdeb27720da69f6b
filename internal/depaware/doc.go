// Package depaware keeps each binary's dependencies in view, as
// tailscale's depaware.txt does: cmd/<binary>/depaware.txt lists the
// packages of this module and the third-party packages (by module) that
// the binary links, from `go list -deps`. Its tests fail when a list is
// out of date (`make depaware` rewrites them, and the diff shows a new
// dependency in review) and when vma-enroll, which runs on the
// appliances, links server, store or SQL code. It has no code of its own.
package depaware
