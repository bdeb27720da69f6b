package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratemysql "github.com/golang-migrate/migrate/v4/database/mysql"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/oma-enroll/oma-enroll/migrations"
)

// Direction of a migration run.
type Direction string

// Migration directions.
const (
	Up   Direction = "up"
	Down Direction = "down"
)

// MigrateUp applies every migration not yet applied. It is a no-op on an
// up-to-date database and safe to run while stores are open on it.
func MigrateUp(ctx context.Context, driver, dsn string) error {
	return Migrate(ctx, driver, dsn, Up)
}

// MigrateDown reverts every migration: it drops all the store's tables.
func MigrateDown(ctx context.Context, driver, dsn string) error {
	return Migrate(ctx, driver, dsn, Down)
}

// Migrate runs the embedded migrations of driver's dialect up or all the way
// down, with golang-migrate. Versions are recorded in schema_migrations.
func Migrate(ctx context.Context, driver, dsn string, dir Direction) error {
	if dir != Up && dir != Down {
		return fmt.Errorf("unknown migration direction %q: use %q or %q", dir, Up, Down)
	}
	m, err := newMigrate(ctx, driver, dsn)
	if err != nil {
		return err
	}
	defer m.Close()
	stop := context.AfterFunc(ctx, func() {
		select {
		case m.GracefulStop <- true:
		default:
		}
	})
	defer stop()
	if dir == Up {
		err = m.Up()
	} else {
		err = m.Down()
	}
	if errors.Is(err, migrate.ErrNoChange) {
		err = nil
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		var dirty migrate.ErrDirty
		if errors.As(err, &dirty) {
			return fmt.Errorf("migrate %s: the database is marked dirty at version %d: a migration failed halfway; "+
				"repair the schema by hand, then set the version in schema_migrations: %w", dir, dirty.Version, err)
		}
		return fmt.Errorf("migrate %s: %w", dir, mapErr(err))
	}
	return nil
}

// MigrateStatus returns the applied schema version (0 for none) and whether
// the last migration failed halfway (dirty).
func MigrateStatus(ctx context.Context, driver, dsn string) (version uint, dirty bool, err error) {
	m, err := newMigrate(ctx, driver, dsn)
	if err != nil {
		return 0, false, err
	}
	defer m.Close()
	version, dirty, err = m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("migration status: %w", mapErr(err))
	}
	return version, dirty, nil
}

// LatestVersion returns the newest migration version embedded for driver.
func LatestVersion(driver string) (uint, error) {
	dir, err := migrationsDir(driver)
	if err != nil {
		return 0, err
	}
	entries, err := fs.ReadDir(migrations.FS, dir)
	if err != nil {
		return 0, fmt.Errorf("read embedded migrations: %w", err)
	}
	var latest uint
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(num, 10, 32)
		if err != nil {
			continue
		}
		latest = max(latest, uint(v))
	}
	return latest, nil
}

func migrationsDir(driver string) (string, error) {
	switch driver {
	case DriverSQLite, DriverMySQL:
		return driver, nil
	}
	return "", fmt.Errorf("unknown database driver %q: use %q or %q", driver, DriverSQLite, DriverMySQL)
}

// newMigrate builds a golang-migrate instance over the embedded files and a
// connection of our own: for SQLite one connection with the store's pragmas
// (busy_timeout, BEGIN IMMEDIATE), so that migrating a file that a running
// store holds open waits for its write lock instead of failing; for MySQL a
// pool with multiStatements (needed to run a whole migration file), used
// only here.
func newMigrate(ctx context.Context, driver, dsn string) (*migrate.Migrate, error) {
	dir, err := migrationsDir(driver)
	if err != nil {
		return nil, err
	}
	src, err := iofs.New(migrations.FS, dir)
	if err != nil {
		return nil, fmt.Errorf("embedded migrations: %w", err)
	}
	drv, err := migrationDriver(ctx, driver, dsn)
	if err != nil {
		src.Close()
		return nil, err
	}
	m, err := migrate.NewWithInstance("iofs", src, driver, drv)
	if err != nil {
		drv.Close()
		src.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return m, nil
}

func migrationDriver(ctx context.Context, driver, dsn string) (database.Driver, error) {
	var (
		db   *sql.DB
		name string
	)
	switch driver {
	case DriverSQLite:
		wdsn, err := sqliteDSN(dsn, 10*time.Second, true)
		if err != nil {
			return nil, err
		}
		if db, err = sql.Open(DriverSQLite, wdsn); err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", dsn, err)
		}
		db.SetMaxOpenConns(1)
		name = dsn
	case DriverMySQL:
		cfg, err := mysqlConfig(dsn)
		if err != nil {
			return nil, err
		}
		if cfg.DBName == "" {
			return nil, errors.New("mysql dsn: no database name (user:pass@tcp(host:3306)/dbname)")
		}
		cfg.MultiStatements = true
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, fmt.Errorf("mysql: %w", err)
		}
		db = sql.OpenDB(conn)
		db.SetMaxOpenConns(2)
		name = cfg.User + "@" + cfg.Addr + "/" + cfg.DBName
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s %s: %w", driver, name, mapErr(err))
	}
	var (
		drv database.Driver
		err error
	)
	if driver == DriverSQLite {
		drv, err = migratesqlite.WithInstance(db, &migratesqlite.Config{})
	} else {
		drv, err = migratemysql.WithInstance(db, &migratemysql.Config{})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrations: %w", mapErr(err))
	}
	return drv, nil
}
