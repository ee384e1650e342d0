package postgresql

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/servicegroup/driver"
)

// toozKey is the advisory lock tooz's PostgreSQL driver takes for a lock
// name: the first two bytes of md5(name), each as one int4 of
// pg_advisory_lock(int4, int4) (tooz passes the 2-byte digest as the
// parameter sequence, so each byte becomes an integer 0..255).
func toozKey(name string) (int32, int32) {
	sum := md5.Sum([]byte(name))
	return int32(sum[0]), int32(sum[1])
}

func (s *session) TryLock(ctx context.Context, name string) (driver.Token, error) {
	const op = "lock"
	if err := s.check(op, name); err != nil {
		return 0, err
	}
	k1, k2 := toozKey(name)
	var tok *int64
	var me, held bool
	// One transaction, sent as one pipelined batch: one round trip. A
	// statement that fails skips the rest, COMMIT included, and the pool
	// closes a connection left in a transaction, which rolls it back.
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	// The token is durable once the row is: commit flushes the WAL record
	// of nextval with it, so a crash never brings back a token a caller
	// has seen.
	b.Queue(`SET LOCAL synchronous_commit = on`)
	// A lock whose holder's session expired is free: take it over.
	b.Queue(`DELETE FROM muster_locks l USING muster_sessions s
  WHERE l.name = $1 AND s.id = l.session_id AND s.expires_at <= now()`, name)
	// The tooz probe is a SHARED transaction-scoped advisory lock: it
	// conflicts with tooz's exclusive session lock of the same name (so a
	// lock tooz holds is refused) and never with another muster probe.
	b.Queue(`INSERT INTO muster_locks (name, session_id, member, token)
  SELECT $1, s.id, s.member, 0 FROM muster_sessions s
  WHERE s.id = $2 AND s.expires_at > now() AND pg_try_advisory_xact_lock_shared($3, $4)
  ON CONFLICT (name) DO NOTHING`, name, s.id, k1, k2)
	// The token is drawn only once this transaction owns the row (token 0
	// is the row just inserted): every earlier holder drew its own before
	// its row existed, so ours is larger than all of theirs. No row: not
	// taken.
	b.Queue(`UPDATE muster_locks SET token = nextval('muster_fencing_tokens')
  WHERE name = $1 AND session_id = $2 AND token = 0 RETURNING token`, name, s.id).QueryRow(func(r pgx.Row) error {
		err := r.Scan(&tok)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	b.Queue(`SELECT EXISTS (SELECT 1 FROM muster_sessions WHERE id = $1 AND expires_at > now()),
  EXISTS (SELECT 1 FROM muster_locks WHERE name = $2)`, s.id, name).QueryRow(func(r pgx.Row) error {
		return r.Scan(&me, &held)
	})
	b.Queue(`COMMIT`)
	err := s.pool.pool.with(ctx, func(c *pgx.Conn) error { return c.SendBatch(ctx, b).Close() })
	if err != nil {
		return 0, s.fail(ctx, op, name, err)
	}
	if tok != nil {
		return driver.Token(*tok), nil
	}
	if !me {
		s.markLost()
		return 0, driver.Errorf(backend, op, name, driver.ErrSessionLost)
	}
	if !held {
		return 0, driver.Errorf(backend, op, name, fmt.Errorf("%w (by tooz: advisory lock %d,%d)", driver.ErrLockHeld, k1, k2))
	}
	return 0, driver.Errorf(backend, op, name, driver.ErrLockHeld)
}

func (s *session) Unlock(ctx context.Context, name string, token driver.Token) error {
	const op = "unlock"
	if err := s.check(op, name); err != nil {
		if s.isClosed() {
			return err
		}
		return driver.Errorf(backend, op, name, fmt.Errorf("%w (%w)", driver.ErrSessionLost, driver.ErrNotLocked))
	}
	var me bool
	var n int64
	err := s.pool.pool.queryRow(ctx, []any{&me, &n}, `
WITH d AS (
  DELETE FROM muster_locks WHERE name = $2 AND session_id = $1 AND token = $3 AND `+live+`
  RETURNING 1
) SELECT `+live+`, (SELECT count(*) FROM d)`, s.id, name, int64(token))
	switch {
	case err != nil:
		return s.fail(ctx, op, name, err)
	case n > 0:
		return nil
	case !me:
		s.markLost()
		return driver.Errorf(backend, op, name, fmt.Errorf("%w (%w)", driver.ErrSessionLost, driver.ErrNotLocked))
	}
	return driver.Errorf(backend, op, name, driver.ErrNotLocked)
}

func (s *session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *session) LockHolder(ctx context.Context, name string) (driver.LockHolder, error) {
	const op = "lock holder"
	if err := s.check(op, name); err != nil {
		return driver.LockHolder{}, err
	}
	k1, k2 := toozKey(name)
	var me, tooz bool
	var member, sid *string
	var tok *int64
	err := s.queryRow(ctx, []any{&me, &member, &tok, &sid, &tooz}, `
SELECT `+live+`, l.member, l.token, l.session_id,
  EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ExclusiveLock'
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND classid = $3::int4::oid AND objid = $4::int4::oid AND objsubid = 2)
FROM (SELECT 1) one
LEFT JOIN (muster_locks l JOIN muster_sessions s ON s.id = l.session_id AND s.expires_at > now()) ON l.name = $2`,
		s.id, name, k1, k2)
	switch {
	case err != nil:
		return driver.LockHolder{}, s.fail(ctx, op, name, err)
	case !me:
		s.markLost()
		return driver.LockHolder{}, driver.Errorf(backend, op, name, driver.ErrSessionLost)
	case member != nil:
		return driver.LockHolder{Member: *member, Token: driver.Token(*tok), Session: *sid}, nil
	case tooz:
		return driver.LockHolder{}, nil // tooz's lock carries no member, token or session
	}
	return driver.LockHolder{}, driver.Errorf(backend, op, name, driver.ErrNotLocked)
}

func (s *session) BreakLock(ctx context.Context, name string) error {
	const op = "break lock"
	if err := s.check(op, name); err != nil {
		return err
	}
	var me bool
	var n int64
	err := s.pool.pool.queryRow(ctx, []any{&me, &n}, `
WITH d AS (
  DELETE FROM muster_locks l USING muster_sessions s
  WHERE l.name = $2 AND s.id = l.session_id AND s.expires_at > now() AND `+live+`
  RETURNING 1
) SELECT `+live+`, (SELECT count(*) FROM d)`, s.id, name)
	switch {
	case err != nil:
		return s.fail(ctx, op, name, err)
	case n > 0:
		return nil
	case !me:
		s.markLost()
		return driver.Errorf(backend, op, name, driver.ErrSessionLost)
	}
	return driver.Errorf(backend, op, name, driver.ErrNotLocked)
}
