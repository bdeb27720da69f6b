// Package migrations holds the versioned schema of both stores as SQL files
// in golang-migrate's naming (NNNN_name.up.sql / NNNN_name.down.sql), one
// folder per dialect, embedded into the binaries that apply them.
package migrations

import "embed"

// FS holds mysql/*.sql and sqlite/*.sql.
//
//go:embed mysql/*.sql sqlite/*.sql
var FS embed.FS
