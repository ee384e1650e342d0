package postgresql

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/musterhq/muster/servicegroup/driver"
)

func init() {
	driver.Register("postgresql", Open)
	driver.Register("postgres", Open)
}

const backend = "postgresql"

type session struct {
	pool   *sharedPool
	where  string // the redacted URL, for errors
	id     string
	member string
	ttl    time.Duration

	mu     sync.Mutex
	closed bool
	lost   bool
	done   chan struct{}
	wg     sync.WaitGroup // watches
}

// Open opens a session on the PostgreSQL database the URL names, creating
// muster's tables on first use (see SchemaSQL).
func Open(ctx context.Context, opts driver.Options) (driver.Driver, error) {
	where := driver.Redact(opts.URL)
	if opts.TTL <= 0 {
		return nil, driver.Errorf(backend, "open", where, fmt.Errorf("TTL %v must be positive", opts.TTL))
	}
	if opts.TTL < time.Millisecond {
		opts.TTL = time.Millisecond
	}
	if err := driver.ValidateName("member", opts.Member); err != nil {
		return nil, driver.Errorf(backend, "open", where, err)
	}
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = 5 * time.Second
	}
	octx, cancel := context.WithTimeout(ctx, dial)
	defer cancel()
	fail := func(err error) error {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no answer within the dial timeout %v: %v", dial, err)
		}
		return driver.Unavailable(backend, where, describe(err))
	}
	sp, err := acquirePool(octx, opts.URL, dial, opts.TTL)
	if err != nil {
		return nil, fail(err)
	}
	s := &session{pool: sp, where: where, id: newSessionID(), member: opts.Member,
		ttl: opts.TTL, done: make(chan struct{})}
	// One statement: end the instance's earlier sessions (their members
	// leave, their locks are freed, by cascade) and start this one.
	const q = `
WITH old AS (
  DELETE FROM muster_sessions WHERE $3 <> '' AND instance = $3 RETURNING id
), n AS (
  SELECT pg_notify('muster_' || left(md5(current_schema() || '/' || group_name), 24), 'l ' || member)
  FROM muster_members WHERE session_id IN (SELECT id FROM old)
), ins AS (
  INSERT INTO muster_sessions (id, member, instance, ttl, renewed_at, expires_at)
  VALUES ($1, $2, $3, $4 * interval '1 microsecond', now(), now() + $4 * interval '1 microsecond')
  RETURNING renewed_at
)
SELECT (SELECT count(*) FROM n), renewed_at FROM ins`
	var notified int64
	var began time.Time
	if err := sp.pool.queryRow(octx, []any{&notified, &began}, q, s.id, s.member, opts.Instance, s.ttl.Microseconds()); err != nil {
		sp.release()
		return nil, fail(err)
	}
	return s, nil
}

// describe adds what a DBA needs to the server's errors seen at Open.
func describe(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case "42501": // insufficient_privilege
		return fmt.Errorf("%v: the account may lack privileges; create the schema ahead of time with a privileged account (postgresql.CreateSchema or SchemaSQL) and grant the runtime account row privileges (GrantSQL)", err)
	case "42P01": // undefined_table: the schema went away under us
		return fmt.Errorf("%v: muster's tables are missing", err)
	}
	return err
}

// SessionID is this session's random id, as LockHolder reports it.
func (s *session) SessionID() string { return s.id }

// check refuses calls on a closed or lost session.
func (s *session) check(op, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return driver.Errorf(backend, op, name, driver.ErrClosed)
	case s.lost:
		return driver.Errorf(backend, op, name, driver.ErrSessionLost)
	}
	return nil
}

func (s *session) markLost() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lost {
		s.lost = true
		close(s.done)
	}
}

// fail maps a query error of op on name to the SPI's errors.
func (s *session) fail(ctx context.Context, op, name string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23503": // foreign_key_violation: the group (or our session) is gone
			if pe.ConstraintName == "muster_members_session_id_fkey" || pe.ConstraintName == "muster_locks_session_id_fkey" {
				s.markLost()
				return driver.Errorf(backend, op, name, driver.ErrSessionLost)
			}
			return driver.Errorf(backend, op, name, driver.ErrGroupNotFound)
		case "55P03": // lock_not_available: lock_timeout
			if op == "lock" {
				return driver.Errorf(backend, op, name, driver.ErrLockHeld)
			}
		}
		return driver.Errorf(backend, op, name, fmt.Errorf("%s: %w", s.where, describe(err)))
	}
	return driver.Errorf(backend, op, name, fmt.Errorf("%w: %s: %v", driver.ErrUnavailable, s.where, err))
}

// retryable says whether a failed idempotent statement may run again on
// another connection: the one it used broke (a restarted server, a
// terminated backend), not the statement.
func retryable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// admin_shutdown, crash_shutdown, cannot_connect_now: the backend ended.
		return pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return true // a network error or a closed connection
}

// queryRow runs an idempotent single-row statement, once more on another
// connection if the first one broke.
func (s *session) queryRow(ctx context.Context, dst []any, q string, args ...any) error {
	var err error
	for try := 0; try < 3; try++ {
		err = s.pool.pool.queryRow(ctx, dst, q, args...)
		if !retryable(ctx, err) || errors.Is(err, pgx.ErrNoRows) {
			return err
		}
	}
	return err
}

// alive says whether this session's row is live, by the server's clock;
// it marks the session lost when it is not.
func (s *session) alive(ctx context.Context) (bool, error) {
	var live bool
	err := s.queryRow(ctx, []any{&live}, `SELECT EXISTS (SELECT 1 FROM muster_sessions WHERE id = $1 AND expires_at > now())`, s.id)
	if err != nil {
		return false, err
	}
	if !live {
		s.markLost()
	}
	return live, nil
}

// lostOr returns ErrSessionLost when this session has ended, else the
// op's own error els.
func (s *session) lostOr(ctx context.Context, op, name string, els error) error {
	live, err := s.alive(ctx)
	if err != nil {
		return s.fail(ctx, op, name, err)
	}
	if !live {
		return driver.Errorf(backend, op, name, driver.ErrSessionLost)
	}
	return driver.Errorf(backend, op, name, els)
}

// heartbeatSQL renews the session by the server's clock: one index
// lookup and one row written. Dead sessions are deleted by the pool's
// janitor (see cleanupSQL), never on this path.
const heartbeatSQL = `
UPDATE muster_sessions SET renewed_at = now(), expires_at = now() + ttl
WHERE id = $1 AND expires_at > now() RETURNING renewed_at`

func (s *session) Heartbeat(ctx context.Context) error {
	if err := s.check("heartbeat", s.member); err != nil {
		return err
	}
	var renewed time.Time
	err := s.queryRow(ctx, []any{&renewed}, heartbeatSQL, s.id)
	if errors.Is(err, pgx.ErrNoRows) {
		s.markLost()
		return driver.Errorf(backend, "heartbeat", s.member, driver.ErrSessionLost)
	}
	if err != nil {
		return s.fail(ctx, "heartbeat", s.member, err)
	}
	return nil
}

func (s *session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	wasLost := s.lost
	if !s.lost {
		s.lost = true
		close(s.done)
	}
	s.mu.Unlock()
	var err error
	if !wasLost {
		const q = `
WITH n AS (
  SELECT pg_notify('muster_' || left(md5(current_schema() || '/' || group_name), 24), 'l ' || member)
  FROM muster_members WHERE session_id = $1
), d AS (DELETE FROM muster_sessions WHERE id = $1 RETURNING 1)
SELECT (SELECT count(*) FROM n), (SELECT count(*) FROM d)`
		var a, b int64
		if qerr := s.queryRow(ctx, []any{&a, &b}, q, s.id); qerr != nil {
			err = driver.Errorf(backend, "close", s.where, fmt.Errorf("%w: %v", driver.ErrUnavailable, qerr))
		}
	}
	s.wg.Wait()
	s.pool.release()
	return err
}

func (s *session) Done() <-chan struct{} { return s.done }

func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// sharedPool is one pgx pool shared by every session of this process on
// one URL, counted so the last session's Close closes it.
type sharedPool struct {
	key    string
	pool   *connPool
	schema string // current_schema(): names the NOTIFY channels
	refs   int    // guarded by poolsMu
	jan    *janitor
}

var (
	poolsMu sync.Mutex
	pools   = map[string]*sharedPool{}
)

// acquirePool returns the process's pool for url, making it (and checking
// the connection and the schema) when there is none.
func acquirePool(ctx context.Context, url string, dial, ttl time.Duration) (*sharedPool, error) {
	key := url + "\x00" + dial.String()
	poolsMu.Lock()
	if sp, ok := pools[key]; ok {
		sp.refs++
		sp.jan.every(ttl)
		poolsMu.Unlock()
		return sp, nil
	}
	poolsMu.Unlock()
	// Connect without the lock: an unreachable address must not hold up
	// sessions on others.
	cfg, maxConns, err := poolConfig(url, dial)
	if err != nil {
		return nil, err
	}
	p := newConnPool(cfg, maxConns)
	schema, err := ensureSchema(ctx, p)
	if err != nil {
		p.close()
		return nil, err
	}
	poolsMu.Lock()
	if sp, ok := pools[key]; ok { // another session made one meanwhile
		sp.refs++
		sp.jan.every(ttl)
		poolsMu.Unlock()
		p.close()
		return sp, nil
	}
	sp := &sharedPool{key: key, pool: p, schema: schema, refs: 1, jan: startJanitor(p, ttl)}
	pools[key] = sp
	poolsMu.Unlock()
	return sp, nil
}

func (sp *sharedPool) release() {
	poolsMu.Lock()
	sp.refs--
	last := sp.refs == 0
	if last {
		delete(pools, sp.key)
	}
	poolsMu.Unlock()
	if last {
		sp.jan.stop()
		sp.pool.close()
	}
}
