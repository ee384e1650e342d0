package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/driver"
)

func init() {
	driver.Register("mysql", Open)
	driver.Register("mariadb", Open)
}

const backend = "mysql"

// Pool limits of one session: a session's calls are few and short, so a
// handful of connections serve it; many sessions share one server.
const (
	maxOpenConns = 4
	maxIdleConns = 2
	connIdleTime = time.Minute
)

// The session's statements.
const (
	// heartbeatSQL renews a live session by the server's clock; it matches
	// no row once the session has expired.
	heartbeatSQL = `UPDATE muster_sessions
		SET renewed_at = CURRENT_TIMESTAMP(6), expires_at = CURRENT_TIMESTAMP(6) + INTERVAL ttl_us MICROSECOND
		WHERE id = ? AND expires_at > CURRENT_TIMESTAMP(6)`
	// sweepSQL finds a batch of dead sessions, oldest first.
	sweepSQL = `SELECT id FROM muster_sessions
		WHERE expires_at < CURRENT_TIMESTAMP(6) ORDER BY expires_at LIMIT 100`
	// endInstanceSQL ends an instance's earlier sessions.
	endInstanceSQL = "DELETE FROM muster_sessions WHERE instance = ?"
)

// sweepEvery is how many heartbeats pass between two deletions of dead
// sessions by one session.
const sweepEvery = 4

type session struct {
	db     *sql.DB
	where  string // the redacted URL, for errors
	id     string
	member string
	inst   string
	ttl    time.Duration
	log    *zap.Logger
	beats  atomic.Uint64
	locks  atomic.Uint64 // TryLocks that took their lock

	mu     sync.Mutex
	closed bool
	lost   bool
	done   chan struct{}
}

// errNewerSchema marks a schema this muster must not write.
var errNewerSchema = errors.New("newer muster schema")

// Open opens a session on the MySQL or MariaDB database the URL names,
// creating muster's tables there on first use.
func Open(ctx context.Context, opts driver.Options) (driver.Driver, error) {
	where := driver.Redact(opts.URL)
	if opts.TTL <= 0 {
		return nil, driver.Errorf(backend, "open", where, fmt.Errorf("TTL %v must be positive", opts.TTL))
	}
	if err := driver.ValidateName("member", opts.Member); err != nil {
		return nil, driver.Errorf(backend, "open", where, err)
	}
	if len(opts.Instance) > 255 {
		return nil, driver.Errorf(backend, "open", where, fmt.Errorf("%w: instance longer than 255 bytes", driver.ErrInvalidName))
	}
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = 5 * time.Second
	}
	octx, cancel := context.WithTimeout(ctx, dial)
	defer cancel()
	fail := func(err error) error {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no answer within the dial timeout %v", dial)
		}
		return driver.Unavailable(backend, where, err)
	}
	db, cfg, err := connect(octx, opts.URL, dial, opts.Logger)
	if err != nil {
		return nil, fail(err)
	}
	if err := checkSchema(octx, db, cfg.DBName); err != nil {
		db.Close()
		if errors.Is(err, errNewerSchema) {
			return nil, driver.Errorf(backend, "open", where, err)
		}
		return nil, fail(err)
	}
	s := &session{db: db, where: where, id: newSessionID(), member: opts.Member,
		inst: opts.Instance, ttl: opts.TTL, log: opts.Logger, done: make(chan struct{})}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if err := s.begin(octx); err != nil {
		db.Close()
		return nil, fail(err)
	}
	return s, nil
}

// connect opens a pool for the URL and checks that it can log in. A
// MySQL server, which lacks MariaDB's session variables, gets its own.
func connect(ctx context.Context, rawURL string, dial time.Duration, log *zap.Logger) (*sql.DB, *gomysql.Config, error) {
	cfg, err := parseURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = dial
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cfg.Logger = mysqlLogger{log}
	for attempt := 0; ; attempt++ {
		conn, err := gomysql.NewConnector(cfg)
		if err != nil {
			return nil, nil, err
		}
		db := sql.OpenDB(conn)
		db.SetMaxOpenConns(maxOpenConns)
		db.SetMaxIdleConns(maxIdleConns)
		db.SetConnMaxIdleTime(connIdleTime)
		err = db.PingContext(ctx)
		if err == nil {
			return db, cfg, nil
		}
		db.Close()
		if attempt == 0 && mysqlErrno(err) == erUnknownSysVar {
			mysqlParams(cfg)
			continue
		}
		return nil, nil, err
	}
}

// begin writes the session's row, ending the instance's earlier sessions
// in the same transaction.
func (s *session) begin(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.inst != "" {
			if _, err := tx.ExecContext(ctx, endInstanceSQL, s.inst); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO muster_sessions (id, member, instance, ttl_us, renewed_at, expires_at)
			VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP(6), CURRENT_TIMESTAMP(6) + INTERVAL ? MICROSECOND)`,
			s.id, s.member, s.inst, s.ttl.Microseconds(), s.ttl.Microseconds())
		return err
	})
}

// tx runs fn in a short transaction, again (up to three times) when the
// server chose it as a deadlock victim.
func (s *session) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var tx *sql.Tx
		tx, err = s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err = fn(tx); err == nil {
			err = tx.Commit()
		} else {
			_ = tx.Rollback()
		}
		if mysqlErrno(err) != erLockDeadlock {
			return err
		}
	}
	return err
}

// exec runs one statement, again (up to three times) when the server
// chose it as a deadlock victim: it was rolled back and had no effect.
func (s *session) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	for attempt := 1; ; attempt++ {
		res, err := s.db.ExecContext(ctx, query, args...)
		if mysqlErrno(err) != erLockDeadlock || attempt == 3 {
			return res, err
		}
	}
}

// check returns the error for a call through a closed or lost session.
func (s *session) check(op, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return driver.Errorf(backend, op, name, driver.ErrClosed)
	}
	if s.lost {
		return driver.Errorf(backend, op, name, driver.ErrSessionLost)
	}
	return nil
}

// fail maps err from op on name to the SPI's errors: a sentinel stays
// (ErrSessionLost also ends the session), a cancelled context is the
// context's error, anything else is the server being unavailable.
func (s *session) fail(ctx context.Context, op, name string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, driver.ErrSessionLost) {
		s.markLost()
	}
	for _, sentinel := range []error{driver.ErrSessionLost, driver.ErrGroupNotFound, driver.ErrGroupExists,
		driver.ErrGroupNotEmpty, driver.ErrMemberExists, driver.ErrNotMember, driver.ErrLockHeld,
		driver.ErrNotLocked, driver.ErrInvalidName} {
		if errors.Is(err, sentinel) {
			return driver.Errorf(backend, op, name, err)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return driver.Errorf(backend, op, name, fmt.Errorf("%w: %s: %v", driver.ErrUnavailable, s.where, err))
}

func (s *session) markLost() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lost {
		s.lost = true
		close(s.done)
	}
}

// SessionID is this session's random id, as LockHolder reports it.
func (s *session) SessionID() string { return s.id }

func (s *session) Heartbeat(ctx context.Context) error {
	if err := s.check("heartbeat", s.member); err != nil {
		return err
	}
	res, err := s.exec(ctx, heartbeatSQL, s.id)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			err = driver.ErrSessionLost
		}
	}
	if err != nil {
		return s.fail(ctx, "heartbeat", s.member, err)
	}
	if s.beats.Add(1)%sweepEvery == 0 {
		s.sweep(ctx)
	}
	return nil
}

// sweep deletes a bounded batch of dead sessions (and, by cascade, their
// members and locks): readers filter dead rows anyway, this keeps the
// tables small without an external job. It is best effort.
func (s *session) sweep(ctx context.Context) {
	// Ids first, by a plain read that locks nothing, then a delete by
	// primary key: a range delete on expires_at would lock that index
	// before the rows, the reverse of a heartbeat's order, and deadlock.
	rows, err := s.db.QueryContext(ctx, sweepSQL)
	var ids []any
	if err == nil {
		for rows.Next() {
			var id string
			if err = rows.Scan(&id); err != nil {
				break
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err == nil && len(ids) > 0 {
		q := "DELETE FROM muster_sessions WHERE expires_at < CURRENT_TIMESTAMP(6) AND id IN (?" +
			strings.Repeat(", ?", len(ids)-1) + ")"
		_, err = s.db.ExecContext(ctx, q, ids...)
	}
	if err != nil && ctx.Err() == nil {
		s.log.Debug("mysql: sweep of dead sessions", zap.String("url", s.where), zap.Error(err))
	}
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
		// The cascade frees the session's memberships and locks at once.
		if _, derr := s.exec(ctx, "DELETE FROM muster_sessions WHERE id = ?", s.id); derr != nil {
			err = driver.Errorf(backend, "close", s.where, fmt.Errorf("%w: %v", driver.ErrUnavailable, derr))
		}
	}
	if cerr := s.db.Close(); err == nil && cerr != nil {
		err = driver.Errorf(backend, "close", s.where, cerr)
	}
	return err
}

func (s *session) Done() <-chan struct{} { return s.done }

func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// mysqlLogger sends go-sql-driver's diagnostics (a dropped connection,
// mostly) to the session's logger at debug level.
type mysqlLogger struct{ l *zap.Logger }

func (m mysqlLogger) Print(v ...any) {
	if m.l != nil {
		m.l.Debug(fmt.Sprint(v...))
	}
}
