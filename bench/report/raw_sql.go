package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/internal/testserver"
)

// rawSQL runs the statements of each operation on one connection.
type rawSQL struct {
	pg *pgx.Conn // postgresql
	my *sql.DB   // mysql
}

func newRawSQL(ctx context.Context, b *backend) (raw, error) {
	if b.name == "postgresql" {
		schema := "raw" + rnd()
		if err := pgExec(ctx, b.srv, "CREATE SCHEMA "+schema); err != nil {
			return nil, err
		}
		c, err := pgx.Connect(ctx, testserver.PostgresURL(b.srv, "postgres")+"&search_path="+schema)
		if err != nil {
			return nil, err
		}
		return &rawSQL{pg: c}, nil
	}
	db := "raw" + rnd()
	if err := myExec(ctx, b.srv, "", "CREATE DATABASE "+db); err != nil {
		return nil, err
	}
	d, err := myDB(b.srv, db)
	if err != nil {
		return nil, err
	}
	d.SetMaxOpenConns(1)
	return &rawSQL{my: d}, nil
}

func (r *rawSQL) exec(ctx context.Context, q string, args ...any) (int64, error) {
	if r.pg != nil {
		t, err := r.pg.Exec(ctx, q, args...)
		return t.RowsAffected(), err
	}
	res, err := r.my.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// count runs a query and counts its rows.
func (r *rawSQL) count(ctx context.Context, q string, args ...any) (int, error) {
	n := 0
	if r.pg != nil {
		rows, err := r.pg.Query(ctx, q, args...)
		if err != nil {
			return 0, err
		}
		for rows.Next() {
			n++
		}
		rows.Close()
		return n, rows.Err()
	}
	rows, err := r.my.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

// q rewrites $1.. placeholders for MySQL and now() arithmetic per dialect.
func (r *rawSQL) q(pg, my string) string {
	if r.pg != nil {
		return pg
	}
	return my
}

func (r *rawSQL) setup(ctx context.Context) error {
	stmts := []string{
		r.q("CREATE TABLE sessions (id text PRIMARY KEY, expires_at timestamptz NOT NULL)",
			"CREATE TABLE sessions (id varchar(64) PRIMARY KEY, expires_at datetime(6) NOT NULL)"),
		r.q("CREATE TABLE members (g text, m text, session_id text NOT NULL REFERENCES sessions ON DELETE CASCADE, caps bytea, PRIMARY KEY (g, m))",
			"CREATE TABLE members (g varchar(255), m varchar(255), session_id varchar(64) NOT NULL, caps blob, PRIMARY KEY (g, m), FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE)"),
		r.q("CREATE TABLE locks (name text PRIMARY KEY, session_id text NOT NULL, token bigint NOT NULL)",
			"CREATE TABLE locks (name varchar(255) PRIMARY KEY, session_id varchar(64) NOT NULL, token bigint NOT NULL)"),
		r.q("INSERT INTO sessions VALUES ('s', now() + interval '1 hour')",
			"INSERT INTO sessions VALUES ('s', now(6) + interval 1 hour)"),
	}
	for _, s := range stmts {
		if _, err := r.exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	for _, n := range []int{1, 200} {
		for i := range n {
			if _, err := r.exec(ctx, r.q("INSERT INTO members VALUES ($1, $2, 's', $3)", "INSERT INTO members VALUES (?, ?, 's', ?)"),
				fmt.Sprintf("g%d", n), fmt.Sprintf("m%d", i), []byte{0x80}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *rawSQL) join(ctx context.Context) error {
	_, err := r.exec(ctx, r.q("INSERT INTO members VALUES ('gj', 'self', 's', $1)", "INSERT INTO members VALUES ('gj', 'self', 's', ?)"), []byte{0x80})
	return err
}
func (r *rawSQL) leave(ctx context.Context) error {
	_, err := r.exec(ctx, "DELETE FROM members WHERE g = 'gj' AND m = 'self'")
	return err
}
func (r *rawSQL) isUp(ctx context.Context) error {
	n, err := r.count(ctx, r.q(
		"SELECT 1 FROM members m JOIN sessions s ON s.id = m.session_id WHERE m.g = 'g200' AND m.m = 'm0' AND s.expires_at > now()",
		"SELECT 1 FROM members m JOIN sessions s ON s.id = m.session_id WHERE m.g = 'g200' AND m.m = 'm0' AND s.expires_at > now(6)"))
	if err == nil && n != 1 {
		err = errors.New("raw sql: member not up")
	}
	return err
}
func (r *rawSQL) list(ctx context.Context, n int) error {
	got, err := r.count(ctx, r.q(
		"SELECT m.m, m.caps, s.expires_at FROM members m JOIN sessions s ON s.id = m.session_id WHERE m.g = $1 AND s.expires_at > now()",
		"SELECT m.m, m.caps, s.expires_at FROM members m JOIN sessions s ON s.id = m.session_id WHERE m.g = ? AND s.expires_at > now(6)"),
		fmt.Sprintf("g%d", n))
	if err == nil && got != n {
		err = fmt.Errorf("raw sql: %d members, want %d", got, n)
	}
	return err
}
func (r *rawSQL) setCaps(ctx context.Context) error {
	_, err := r.exec(ctx, r.q("UPDATE members SET caps = $1 WHERE g = 'g1' AND m = 'm0'", "UPDATE members SET caps = ? WHERE g = 'g1' AND m = 'm0'"), []byte{0x81, 0xa1, 'a', 1})
	return err
}
func (r *rawSQL) heartbeat(ctx context.Context) error {
	_, err := r.exec(ctx, r.q("UPDATE sessions SET expires_at = now() + interval '1 hour' WHERE id = 's'",
		"UPDATE sessions SET expires_at = now(6) + interval 1 hour WHERE id = 's'"))
	return err
}
func (r *rawSQL) lock(ctx context.Context) error {
	n, err := r.exec(ctx, r.q("INSERT INTO locks VALUES ('x', 's', 1) ON CONFLICT DO NOTHING",
		"INSERT IGNORE INTO locks VALUES ('x', 's', 1)"))
	if err != nil {
		return err
	}
	if n != 1 {
		return errors.New("raw sql: lock held")
	}
	_, err = r.exec(ctx, "DELETE FROM locks WHERE name = 'x'")
	return err
}
func (r *rawSQL) close() {
	if r.pg != nil {
		r.pg.Close(context.Background())
	}
	if r.my != nil {
		r.my.Close()
	}
}
