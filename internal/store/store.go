// Package store implements enroll.Store with sqlx over two databases:
// SQLite (modernc.org/sqlite, the embedded default: a file in the data
// directory) and MariaDB / MySQL (github.com/go-sql-driver/mysql, the
// production store, which several server instances may share).
//
// Both dialects use the same SQL but for a few clauses (upserts, locking
// reads). Times are written as fixed-width UTC text ("2006-01-02
// 15:04:05.000000"), which SQLite compares correctly as strings and MySQL
// reads as DATETIME(6); they are read back as UTC time.Time values.
//
// SQLite writes all go through one dedicated connection (transactions begin
// IMMEDIATE, so the write lock is taken up front), while reads use a pool of
// read-only connections; docs/design.md §2 explains why one writer is both the
// fastest and the only setup free of "database is locked" errors.
//
// Every InTx call is one transaction, retried as a whole on transient
// conflicts; connection failures surface as enroll.ErrUnavailable and missing
// rows as enroll.ErrNotFound.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// Driver names accepted by Open and the migration helpers.
const (
	DriverSQLite = "sqlite"
	DriverMySQL  = "mysql"
)

// Options tunes a store. Zero values take the defaults.
type Options struct {
	// MaxOpenConns bounds the read pool (SQLite) or the whole pool (MySQL).
	// Defaults: SQLite max(4, GOMAXPROCS); MySQL 32.
	MaxOpenConns int
	// MaxIdleConns defaults to MaxOpenConns.
	MaxIdleConns int
	// ConnMaxLifetime of pooled connections (MySQL default 5m; SQLite none).
	ConnMaxLifetime time.Duration
	// MaxAttempts bounds how often InTx runs fn on transient conflicts (20).
	MaxAttempts int
	// BusyTimeout is SQLite's busy_timeout (10s).
	BusyTimeout time.Duration
}

func (o *Options) fill(driver string) {
	if o.MaxOpenConns <= 0 {
		if driver == DriverSQLite {
			o.MaxOpenConns = max(4, runtime.GOMAXPROCS(0))
		} else {
			o.MaxOpenConns = 32
		}
	}
	if o.MaxIdleConns <= 0 || o.MaxIdleConns > o.MaxOpenConns {
		o.MaxIdleConns = o.MaxOpenConns
	}
	if o.ConnMaxLifetime == 0 && driver == DriverMySQL {
		o.ConnMaxLifetime = 5 * time.Minute
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 20
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 10 * time.Second
	}
}

type dialect int

const (
	dialectSQLite dialect = iota
	dialectMySQL
)

// DB is an enroll.Store over SQLite or MySQL.
type DB struct {
	dialect dialect
	// w runs every transaction (InTx) and every write. For SQLite it is
	// one connection; for MySQL it is the same pool as r.
	w *sqlx.DB
	// r serves the read methods.
	r    *sqlx.DB
	opts Options
}

var _ enroll.Store = (*DB)(nil)

// Open connects to the database: driver is "sqlite" (dsn is a file path or
// a file: URI) or "mysql" (dsn in go-sql-driver's form,
// user:pass@tcp(host:3306)/dbname). It does not apply migrations (see
// MigrateUp). Connection failures are enroll.ErrUnavailable errors.
func Open(ctx context.Context, driver, dsn string, opts Options) (*DB, error) {
	opts.fill(driver)
	switch driver {
	case DriverSQLite:
		return openSQLite(ctx, dsn, opts)
	case DriverMySQL:
		return openMySQL(ctx, dsn, opts)
	default:
		return nil, fmt.Errorf("unknown database driver %q: use %q or %q", driver, DriverSQLite, DriverMySQL)
	}
}

func openSQLite(ctx context.Context, dsn string, opts Options) (*DB, error) {
	wdsn, err := sqliteDSN(dsn, opts.BusyTimeout, true)
	if err != nil {
		return nil, err
	}
	w, err := sqlx.Open(DriverSQLite, wdsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", dsn, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// Connect the writer first: it switches the file to WAL, which the
	// read-only connections cannot do.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", dsn, mapErr(err))
	}
	db := &DB{dialect: dialectSQLite, w: w, r: w, opts: opts}
	if isMemory(dsn) {
		// Every connection to :memory: is its own database: read through
		// the writer.
		return db, nil
	}
	rdsn, err := sqliteDSN(dsn, opts.BusyTimeout, false)
	if err != nil {
		w.Close()
		return nil, err
	}
	r, err := sqlx.Open(DriverSQLite, rdsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", dsn, err)
	}
	r.SetMaxOpenConns(opts.MaxOpenConns)
	r.SetMaxIdleConns(opts.MaxIdleConns)
	r.SetConnMaxLifetime(opts.ConnMaxLifetime)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", dsn, mapErr(err))
	}
	db.r = r
	return db, nil
}

func isMemory(dsn string) bool {
	return dsn == ":memory:" || strings.HasPrefix(dsn, "file::memory:") || strings.Contains(dsn, "mode=memory")
}

// sqliteDSN turns a file path or file: URI into a modernc DSN with the
// pragmas the store relies on. Parameters the caller gave are kept; ours are
// added where the caller did not set the same pragma. The writer begins
// transactions IMMEDIATE; readers are query_only.
func sqliteDSN(dsn string, busy time.Duration, writer bool) (string, error) {
	if dsn == "" {
		return "", errors.New("sqlite: empty database path")
	}
	path, query := dsn, ""
	if strings.HasPrefix(dsn, "file:") {
		path, query, _ = strings.Cut(dsn, "?")
	} else {
		// A plain path: make it a URI, escaping what a URI would read as
		// syntax.
		path = "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(dsn)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("sqlite dsn %q: %w", dsn, err)
	}
	has := func(name string) bool {
		for _, p := range q["_pragma"] {
			p = strings.ToLower(strings.TrimSpace(p))
			if strings.HasPrefix(p, name) {
				return true
			}
		}
		return false
	}
	add := func(name, value string) {
		if !has(name) {
			q.Add("_pragma", name+"("+value+")")
		}
	}
	add("busy_timeout", fmt.Sprint(busy.Milliseconds()))
	add("foreign_keys", "1")
	add("synchronous", "NORMAL")
	if writer {
		add("journal_mode", "WAL")
		q.Set("_txlock", "immediate")
	} else {
		add("query_only", "1")
	}
	return path + "?" + q.Encode(), nil
}

// mysqlConfig parses a go-sql-driver DSN and sets what the store relies on:
// UTC DATETIME parsing, client-side parameter interpolation, and "rows
// affected" meaning rows matched (so that a conditional UPDATE that changes
// nothing still reports its match).
func mysqlConfig(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true
	cfg.ClientFoundRows = true
	cfg.MultiStatements = false
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	return cfg, nil
}

func openMySQL(ctx context.Context, dsn string, opts Options) (*DB, error) {
	cfg, err := mysqlConfig(dsn)
	if err != nil {
		return nil, err
	}
	if cfg.DBName == "" {
		return nil, errors.New("mysql dsn: no database name (user:pass@tcp(host:3306)/dbname)")
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	db := sqlx.NewDb(sql.OpenDB(conn), DriverMySQL)
	db.SetMaxOpenConns(opts.MaxOpenConns)
	db.SetMaxIdleConns(opts.MaxIdleConns)
	db.SetConnMaxLifetime(opts.ConnMaxLifetime)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open mysql %s@%s/%s: %w", cfg.User, cfg.Addr, cfg.DBName, mapErr(err))
	}
	return &DB{dialect: dialectMySQL, w: db, r: db, opts: opts}, nil
}

// Driver returns "sqlite" or "mysql".
func (s *DB) Driver() string {
	if s.dialect == dialectMySQL {
		return DriverMySQL
	}
	return DriverSQLite
}

// Ping checks that the database answers (for /health).
func (s *DB) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return mapErr(err)
	}
	var one int
	if err := s.r.GetContext(ctx, &one, "SELECT 1"); err != nil {
		return mapErr(err)
	}
	return nil
}

// Close closes every connection.
func (s *DB) Close() error {
	var err error
	if s.r != s.w {
		err = s.r.Close()
	}
	return errors.Join(err, s.w.Close())
}

// timeFormat is how every time is written: fixed-width, so that string
// comparison in SQLite orders times, and accepted by MySQL for DATETIME(6).
const timeFormat = "2006-01-02 15:04:05.000000"

// ts is the SQL argument for a time.
func ts(t time.Time) string { return t.UTC().Format(timeFormat) }

// tsp is the SQL argument for an optional time (NULL when nil).
func tsp(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

// utc normalizes times read back from the database to UTC.
func utc(t *time.Time) {
	if !t.IsZero() {
		*t = t.UTC()
	}
}

func utcp(t *time.Time) {
	if t != nil {
		*t = t.UTC()
	}
}
