package postgresql

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/musterhq/muster/servicegroup/driver"
)

// SchemaVersion is the version of the tables this package reads and
// writes. A database whose muster_schema says more is refused.
const SchemaVersion = 1

// SchemaSQL creates version 1 of muster's tables in the first schema of
// the search_path. Every statement is idempotent. An operator may run it
// by hand (or through CreateSchema) with a privileged account, then grant
// the runtime account row privileges only (see GrantSQL).
const SchemaSQL = `
CREATE TABLE IF NOT EXISTS muster_schema (
  version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS muster_sessions (
  id         text        PRIMARY KEY,
  member     text        NOT NULL,
  instance   text        NOT NULL DEFAULT '',
  ttl        interval    NOT NULL,
  renewed_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS muster_sessions_expires_at ON muster_sessions (expires_at);
CREATE INDEX IF NOT EXISTS muster_sessions_instance ON muster_sessions (instance) WHERE instance <> '';
CREATE TABLE IF NOT EXISTS muster_groups (
  name       text        PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS muster_members (
  group_name   text        NOT NULL REFERENCES muster_groups (name) ON DELETE CASCADE,
  member       text        NOT NULL,
  session_id   text        NOT NULL REFERENCES muster_sessions (id) ON DELETE CASCADE,
  capabilities bytea,
  joined_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_name, member)
);
CREATE INDEX IF NOT EXISTS muster_members_session_id ON muster_members (session_id);
CREATE TABLE IF NOT EXISTS muster_forced_down (
  group_name text        NOT NULL REFERENCES muster_groups (name) ON DELETE CASCADE,
  member     text        NOT NULL,
  since      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_name, member)
);
CREATE SEQUENCE IF NOT EXISTS muster_fencing_tokens AS bigint;
CREATE TABLE IF NOT EXISTS muster_locks (
  name        text        PRIMARY KEY,
  session_id  text        NOT NULL REFERENCES muster_sessions (id) ON DELETE CASCADE,
  member      text        NOT NULL,
  token       bigint      NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS muster_locks_session_id ON muster_locks (session_id);
`

// GrantSQL is what the runtime account (here "muster_app") needs once the
// schema exists: row privileges on the tables, and the sequence.
const GrantSQL = `
GRANT SELECT ON muster_schema TO muster_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON muster_sessions, muster_groups, muster_members, muster_forced_down, muster_locks TO muster_app;
GRANT USAGE ON SEQUENCE muster_fencing_tokens TO muster_app;
`

// CreateSchema creates muster's tables ahead of time on the database (and
// the search_path's first schema) rawURL names, with the account it names.
// It is what Open does on first use; an existing schema of this version is
// left alone, a newer one is refused.
func CreateSchema(ctx context.Context, rawURL string) error {
	where := driver.Redact(rawURL)
	cfg, _, err := poolConfig(rawURL, 0)
	if err != nil {
		return driver.Errorf(backend, "create schema", where, err)
	}
	p := newConnPool(cfg, 1)
	defer p.close()
	if _, err := ensureSchema(ctx, p); err != nil {
		return driver.Errorf(backend, "create schema", where, describe(err))
	}
	return nil
}

// errNewerSchema says the database holds a schema this build cannot use.
var errNewerSchema = errors.New("schema is newer than this muster understands")

// ensureSchema checks the schema's version and creates it when missing:
// under a transaction-scoped advisory lock (one per schema), so processes
// starting at once create it once and never see it half-made. It returns
// current_schema(), which names the NOTIFY channels. The usual case, a
// schema of this version, costs one round trip.
func ensureSchema(ctx context.Context, p *connPool) (string, error) {
	var schema *string
	var v *int
	err := p.queryRow(ctx, []any{&schema, &v}, "SELECT current_schema(), max(version) FROM muster_schema")
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table: none yet
		err = p.queryRow(ctx, []any{&schema}, "SELECT current_schema()")
	}
	switch {
	case err != nil:
		return "", err
	case schema == nil:
		return "", errNoSchema
	case v != nil && *v == SchemaVersion:
		return *schema, nil
	case v != nil && *v > SchemaVersion:
		return "", newerSchema(*v)
	}
	return *schema, p.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(
  ('x' || left(md5('muster/' || current_schema()), 16))::bit(64)::bigint)`); err != nil {
			return err
		}
		var exists bool
		var v *int
		if err := tx.QueryRow(ctx, "SELECT to_regclass('muster_schema') IS NOT NULL").Scan(&exists); err != nil {
			return err
		}
		if exists {
			if err := tx.QueryRow(ctx, "SELECT max(version) FROM muster_schema").Scan(&v); err != nil {
				return err
			}
		}
		switch {
		case v != nil && *v == SchemaVersion:
			return nil
		case v != nil && *v > SchemaVersion:
			return newerSchema(*v)
		}
		if _, err := tx.Exec(ctx, SchemaSQL); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		_, err := tx.Exec(ctx, "DELETE FROM muster_schema; INSERT INTO muster_schema (version) VALUES ("+fmt.Sprint(SchemaVersion)+")")
		return err
	})
}

func newerSchema(v int) error {
	return fmt.Errorf("%w: muster_schema version %d, this build knows %d: upgrade muster", errNewerSchema, v, SchemaVersion)
}
