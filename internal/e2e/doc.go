// Package e2e holds the end-to-end tests: they build oma-server, omactl and
// vma-enroll, start oma-server as a process on loopback ports with a
// temporary data directory (SQLite always, MariaDB too when
// OMA_TEST_MYSQL_DSN is set), and drive it with the real omactl and
// vma-enroll binaries, asserting on their output, files and exit codes.
package e2e
