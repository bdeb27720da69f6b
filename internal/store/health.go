package store

import (
	"context"
	"fmt"
)

// SchemaVersion reads the applied migration version (golang-migrate's
// schema_migrations table) for the health report.
func (s *DB) SchemaVersion(ctx context.Context) (uint, bool, error) {
	var v struct {
		Version int64 `db:"version"`
		Dirty   bool  `db:"dirty"`
	}
	if err := s.r.GetContext(ctx, &v, `SELECT version, dirty FROM schema_migrations LIMIT 1`); err != nil {
		return 0, false, mapErr(fmt.Errorf("schema version: %w", err))
	}
	return uint(v.Version), v.Dirty, nil
}
