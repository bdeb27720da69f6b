package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// MySQL / MariaDB server error numbers the store reacts to.
const (
	myDupEntry          = 1062 // ER_DUP_ENTRY
	myLockWaitTimeout   = 1205 // ER_LOCK_WAIT_TIMEOUT
	myDeadlock          = 1213 // ER_LOCK_DEADLOCK
	myTooManyConns      = 1040 // ER_CON_COUNT_ERROR
	myServerShutdown    = 1053 // ER_SERVER_SHUTDOWN
	myConnKilled        = 1927 // ER_CONNECTION_KILLED (MariaDB)
	myReadOnly          = 1290 // ER_OPTION_PREVENTS_STATEMENT (e.g. --read-only during failover)
	myWsrepNotPrepared  = 1047 // ER_UNKNOWN_COM_ERROR: Galera node not ready ("WSREP has not yet prepared node")
	myClientConnFailure = 2002 // CR_CONNECTION_ERROR and friends (client side; kept for proxies that forward them)
	myClientHostError   = 2003
	myClientGoneAway    = 2006
	myClientLostConn    = 2013
)

// kind classifies a database error for InTx's retry decision and the
// mapping to domain errors.
type kind int

const (
	kindOther     kind = iota
	kindRetry          // deadlock, lock wait timeout, busy or locked database
	kindDuplicate      // unique-key violation
	kindConn           // the database cannot be reached
)

func classify(err error) kind {
	if err == nil {
		return kindOther
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case myDeadlock, myLockWaitTimeout:
			return kindRetry
		case myDupEntry:
			return kindDuplicate
		case myTooManyConns, myServerShutdown, myConnKilled, myReadOnly, myWsrepNotPrepared,
			myClientConnFailure, myClientHostError, myClientGoneAway, myClientLostConn:
			return kindConn
		}
		return kindOther
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return kindRetry
		case sqlite3.SQLITE_CONSTRAINT:
			switch se.Code() {
			case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
				return kindDuplicate
			}
		}
		return kindOther
	}
	if isConnErr(err) {
		return kindConn
	}
	return kindOther
}

// isConnErr reports whether err means the database could not be reached or
// the connection broke: the caller should try again later.
func isConnErr(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "i/o timeout",
		"invalid connection", "bad connection", "no such host", "network is unreachable", "server has gone away"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// mapErr turns a database error into what the domain expects: connection
// failures become enroll.ErrUnavailable; domain errors and everything else
// pass through.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var de *enroll.Error
	if errors.As(err, &de) {
		return err
	}
	if classify(err) == kindConn {
		return enroll.ErrUnavailable(err)
	}
	return err
}

// mapExhausted maps the error of InTx's last attempt once retrying gave up.
func mapExhausted(err error, attempts int) error {
	var de *enroll.Error
	if errors.As(err, &de) {
		return err
	}
	switch classify(err) {
	case kindRetry:
		return enroll.ErrUnavailable(fmt.Errorf("database busy after %d attempts: %w", attempts, err))
	case kindDuplicate:
		return &enroll.Error{Code: enroll.CodeConflict, Message: "a concurrent change conflicted with this one; try again", Err: err}
	}
	return mapErr(err)
}

// notFound is the error for a missing row: errors.Is(err, enroll.ErrNotFound)
// holds and its message names what is missing.
func notFound(format string, args ...any) error {
	return &enroll.Error{Code: enroll.CodeNotFound, Message: fmt.Sprintf(format, args...), Err: enroll.ErrNotFound}
}
