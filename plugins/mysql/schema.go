package mysql

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/musterhq/muster/servicegroup/driver"
)

// SchemaVersion is the version of the tables this package reads and
// writes, kept in muster_schema. A database with a newer version is
// refused: an older muster must not write records it does not understand.
const SchemaVersion = 1

// Schema is the SQL that creates muster's tables (version SchemaVersion),
// for an operator who creates them ahead of time with a privileged account
// (see CreateSchema). Every statement is idempotent.
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS muster_schema (
	id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
	version INT UNSIGNED NOT NULL
) ENGINE=InnoDB`,
	// One row per session: the unit of liveness. Its expiry is computed by
	// the server's clock, never the client's.
	`CREATE TABLE IF NOT EXISTS muster_sessions (
	id VARBINARY(32) NOT NULL PRIMARY KEY,
	member VARBINARY(255) NOT NULL,
	instance VARBINARY(255) NOT NULL DEFAULT '',
	ttl_us BIGINT UNSIGNED NOT NULL,
	renewed_at DATETIME(6) NOT NULL,
	expires_at DATETIME(6) NOT NULL,
	KEY muster_sessions_expires (expires_at),
	KEY muster_sessions_instance (instance)
) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS muster_groups (
	name VARBINARY(255) NOT NULL PRIMARY KEY,
	created_at DATETIME(6) NOT NULL
) ENGINE=InnoDB`,
	// A member row lives and dies with its session and its group.
	`CREATE TABLE IF NOT EXISTS muster_members (
	grp VARBINARY(255) NOT NULL,
	member VARBINARY(255) NOT NULL,
	session_id VARBINARY(32) NOT NULL,
	caps MEDIUMBLOB NULL,
	joined_at DATETIME(6) NOT NULL,
	PRIMARY KEY (grp, member),
	KEY muster_members_session (session_id),
	CONSTRAINT muster_members_group FOREIGN KEY (grp) REFERENCES muster_groups (name) ON DELETE CASCADE,
	CONSTRAINT muster_members_sess FOREIGN KEY (session_id) REFERENCES muster_sessions (id) ON DELETE CASCADE
) ENGINE=InnoDB`,
	// Forced-down marks outlive sessions, not their group.
	`CREATE TABLE IF NOT EXISTS muster_forced_down (
	grp VARBINARY(255) NOT NULL,
	member VARBINARY(255) NOT NULL,
	PRIMARY KEY (grp, member),
	CONSTRAINT muster_forced_down_group FOREIGN KEY (grp) REFERENCES muster_groups (name) ON DELETE CASCADE
) ENGINE=InnoDB`,
	// One row per held lock, owned by a session.
	`CREATE TABLE IF NOT EXISTS muster_locks (
	name VARBINARY(255) NOT NULL PRIMARY KEY,
	session_id VARBINARY(32) NOT NULL,
	member VARBINARY(255) NOT NULL,
	token BIGINT UNSIGNED NOT NULL,
	acquired_at DATETIME(6) NOT NULL,
	KEY muster_locks_session (session_id),
	CONSTRAINT muster_locks_sess FOREIGN KEY (session_id) REFERENCES muster_sessions (id) ON DELETE CASCADE
) ENGINE=InnoDB`,
	// The fencing-token counter: every TryLock inserts a row and takes its
	// auto-increment id (InnoDB persists the counter across restarts since
	// MariaDB 10.2.4 and MySQL 8.0). Old rows are deleted; the counter stays.
	`CREATE TABLE IF NOT EXISTS muster_tokens (
	token BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY
) ENGINE=InnoDB`,
	fmt.Sprintf(`INSERT INTO muster_schema (id, version) VALUES (1, %d)
	ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))`, SchemaVersion),
}

func newerSchema(db string, v int) error {
	return fmt.Errorf("%w: database %q has version %d, this muster knows %d: upgrade muster", errNewerSchema, db, v, SchemaVersion)
}

// schemaLockTimeout bounds the wait for another process creating the
// schema; it stays under statementTimeout, which would cut the wait short.
const schemaLockTimeout = 8 * time.Second

// MySQL error numbers this package reacts to.
const (
	erDupEntry        = 1062
	erNoReferencedRow = 1452
	erNoSuchTable     = 1146
	erUnknownSysVar   = 1193
	erLockDeadlock    = 1213
	erLockWaitTimeout = 1205
)

func mysqlErrno(err error) uint16 {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// checkSchema reads the schema version and creates the tables when they
// are missing.
func checkSchema(ctx context.Context, db *sql.DB, dbName string) error {
	var v int
	err := db.QueryRowContext(ctx, "SELECT version FROM muster_schema WHERE id = 1").Scan(&v)
	switch {
	case err == nil && v == SchemaVersion:
		return nil
	case err == nil && v > SchemaVersion:
		return newerSchema(dbName, v)
	case err == nil, errors.Is(err, sql.ErrNoRows), mysqlErrno(err) == erNoSuchTable:
		return createSchema(ctx, db, dbName)
	default:
		return err
	}
}

// createSchema runs Schema under a named server lock, so processes
// starting at once do not race their CREATE TABLEs (which MySQL does not
// make atomic with the version row).
func createSchema(ctx context.Context, db *sql.DB, dbName string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	sum := sha1.Sum([]byte(dbName))
	lock := "muster_schema_" + hex.EncodeToString(sum[:16])
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", lock, int(schemaLockTimeout/time.Second)).Scan(&got); err != nil {
		return err
	}
	if got.Int64 != 1 {
		return fmt.Errorf("another process held the schema lock %q for %v", lock, schemaLockTimeout)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", lock)
	}()
	var v int
	err = conn.QueryRowContext(ctx, "SELECT version FROM muster_schema WHERE id = 1").Scan(&v)
	if err == nil && v > SchemaVersion {
		return newerSchema(dbName, v)
	}
	if err == nil && v == SchemaVersion {
		return nil
	}
	for _, stmt := range Schema {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	return nil
}

// CreateSchema creates muster's tables in the database rawURL names
// (mysql://admin:pass@host:port/db), for an operator who runs it once
// with an account that may CREATE, ALTER, INDEX and REFERENCES there.
// The runtime account then needs only SELECT, INSERT, UPDATE and DELETE
// on the muster_* tables. It is safe to run while muster processes start.
func CreateSchema(ctx context.Context, rawURL string) error {
	where := driver.Redact(rawURL)
	db, cfg, err := connect(ctx, rawURL, 0, nil)
	if err != nil {
		return driver.Errorf(backend, "create schema", where, err)
	}
	defer db.Close()
	if err := createSchema(ctx, db, cfg.DBName); err != nil {
		return driver.Errorf(backend, "create schema", where, err)
	}
	return nil
}
