// Package hardening holds no production code: its tests prove that the
// enrollment system holds up against hostile and unlucky conditions
// (SECURITY.md lists the threats). They drive the real server in-process
// and the built binaries (oma-server, omactl, vma-enroll) on SQLite, the
// MariaDB of OMA_TEST_MYSQL_DSN and a private mariadbd the tests start and
// kill themselves:
//
//   - bad input on every endpoint of both listeners, with the database
//     compared before and after, and stored hostile names rendered by omactl;
//   - brute force of pairing codes, slow and greedy clients;
//   - races of every transition, in one process and across two processes
//     sharing one MariaDB;
//   - several servers on one database, a crash (kill -9) of oma-server, a
//     lost database, SQLite under concurrent load;
//   - tampering with the audit trail.
//
// Fuzz targets live next to the code they fuzz (internal/server,
// internal/enroll, internal/sshkey).
package hardening
