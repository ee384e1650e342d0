package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/driver"
)

// errToozHeld says a lock is held through GET_LOCK (tooz's MySQL driver).
var errToozHeld = errors.New("held by a GET_LOCK session (tooz)")

// maxUserLockName is the longest name MySQL's GET_LOCK accepts; tooz
// cannot hold a longer one there, so muster does not probe for it.
const maxUserLockName = 64

// trimTokensEvery is how many of a session's locks take one trim of the
// token counter's rows.
const trimTokensEvery = 64

// The lock statements.
const (
	lockRowSQL      = "SELECT session_id FROM muster_locks WHERE name = ? FOR UPDATE"
	sessionAliveSQL = "SELECT COUNT(*) FROM muster_sessions s WHERE s.id = ? AND " + live
	lockHolderSQL   = `SELECT l.member, l.token, l.session_id FROM muster_locks l
		JOIN muster_sessions s ON s.id = l.session_id WHERE l.name = ? AND ` + live
	holderAliveSQL = `SELECT COUNT(*) FROM muster_locks l JOIN muster_sessions s ON s.id = l.session_id
		WHERE l.name = ? AND ` + live
	insertLockSQL = `INSERT INTO muster_locks (name, session_id, member, token, acquired_at)
		SELECT ?, s.id, s.member, 0, CURRENT_TIMESTAMP(6) FROM muster_sessions s WHERE s.id = ? AND ` + live
	// toozFreeSQL refuses a name tooz holds: it locks name with GET_LOCK.
	toozFreeSQL = " AND COALESCE(IS_FREE_LOCK(?), 1) = 1"
	unlockSQL   = `DELETE l FROM muster_locks l JOIN muster_sessions s ON s.id = l.session_id
		WHERE l.name = ? AND l.session_id = ? AND l.token = ? AND ` + live
)

func (s *session) TryLock(ctx context.Context, name string) (driver.Token, error) {
	if err := s.check("lock", name); err != nil {
		return 0, err
	}
	var tok uint64
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		tok, err = s.insertLock(ctx, tx, name)
		return err
	})
	if errors.Is(err, errHolderGone) {
		err = s.tx(ctx, func(tx *sql.Tx) (err error) {
			tok, err = s.takeOver(ctx, tx, name)
			return err
		})
	}
	if mysqlErrno(err) == erLockWaitTimeout {
		err = driver.ErrLockHeld // another TryLock held the row for that long
	}
	if err != nil {
		return 0, s.fail(ctx, "lock", name, err)
	}
	// Older counter rows are not needed: the auto-increment counter
	// survives them. Best effort, outside the lock's transaction, on a
	// session's first lock and every 64th after it: a statement saved on
	// the others, and at most 64 rows left per session taking locks.
	if s.locks.Add(1)%trimTokensEvery == 1 {
		if _, derr := s.exec(ctx, "DELETE FROM muster_tokens WHERE token < ?", tok); derr != nil && ctx.Err() == nil {
			s.log.Debug("mysql: trim token counter", zap.Error(derr))
		}
	}
	return driver.Token(tok), nil
}

// errHolderGone says a lock's row names a session that has expired:
// takeOver replaces it.
var errHolderGone = errors.New("the holder's session has expired")

// insertLock is the lock of a free name, the usual case: insert's four
// statements with BEGIN and COMMIT. A name with a row is held, or
// errHolderGone.
func (s *session) insertLock(ctx context.Context, tx *sql.Tx, name string) (uint64, error) {
	tok, err := s.insert(ctx, tx, name)
	if mysqlErrno(err) != erDupEntry {
		return tok, err
	}
	// A consistent read, no row lock: the holder is live (held), or
	// takeOver locks the row and looks again.
	alive, err := count(ctx, tx, holderAliveSQL, name)
	switch {
	case err != nil:
		return 0, err
	case alive > 0:
		return 0, driver.ErrLockHeld
	}
	return 0, errHolderGone
}

// takeOver takes a lock whose row names an expired session, holding the
// row from the start: of two sessions taking over at once, one waits for
// the other and then finds it live.
func (s *session) takeOver(ctx context.Context, tx *sql.Tx, name string) (uint64, error) {
	var holder string
	err := tx.QueryRowContext(ctx, lockRowSQL, name).Scan(&holder)
	switch {
	case err == sql.ErrNoRows:
	case err != nil:
		return 0, err
	default:
		alive, err := count(ctx, tx, sessionAliveSQL, holder)
		switch {
		case err != nil:
			return 0, err
		case alive > 0:
			return 0, driver.ErrLockHeld
		}
		// Its holder's session expired: the lock is free to take.
		if _, err := tx.ExecContext(ctx, "DELETE FROM muster_locks WHERE name = ?", name); err != nil {
			return 0, err
		}
	}
	tok, err := s.insert(ctx, tx, name)
	if mysqlErrno(err) == erDupEntry {
		return 0, driver.ErrLockHeld
	}
	return tok, err
}

// insert inserts name's row and draws its token. The insert itself checks
// that this session is live and that tooz holds no GET_LOCK of the name
// (names longer than GET_LOCK takes are not checked: tooz cannot hold
// them); when it inserts nothing, one more read says which. A duplicate
// key is returned as the server's error.
func (s *session) insert(ctx context.Context, tx *sql.Tx, name string) (uint64, error) {
	q, args := insertLockSQL, []any{name, s.id}
	if len(name) <= maxUserLockName {
		q, args = q+toozFreeSQL, append(args, name)
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		alive, err := count(ctx, tx, sessionAliveSQL, s.id)
		switch {
		case err != nil:
			return 0, err
		case alive == 0:
			return 0, driver.ErrSessionLost
		}
		return 0, fmt.Errorf("%w: %w", driver.ErrLockHeld, errToozHeld)
	}
	return drawToken(ctx, tx, name)
}

// count runs a COUNT(*) query of one argument.
func count(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, arg any) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, query, arg).Scan(&n)
	return n, err
}

// drawToken gives the lock row this transaction inserted its token.
//
// The token is drawn only once this transaction owns the row. Drawn
// before it (READ COMMITTED takes no gap lock on the free name), another
// TryLock could take and release the lock in between with a later token,
// and this holder would come after it with a smaller one: tokens must
// grow with each holder.
func drawToken(ctx context.Context, tx *sql.Tx, name string) (uint64, error) {
	res, err := tx.ExecContext(ctx, "INSERT INTO muster_tokens () VALUES ()")
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	_, err = tx.ExecContext(ctx, "UPDATE muster_locks SET token = ? WHERE name = ?", uint64(id), name)
	return uint64(id), err
}

func (s *session) Unlock(ctx context.Context, name string, token driver.Token) error {
	if err := s.check("unlock", name); err != nil {
		return err
	}
	res, err := s.exec(ctx, unlockSQL, name, s.id, uint64(token))
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			var alive int
			if alive, err = count(ctx, s.db, sessionAliveSQL, s.id); err == nil {
				if alive == 0 {
					err = fmt.Errorf("%w (%w)", driver.ErrSessionLost, driver.ErrNotLocked)
				} else {
					err = driver.ErrNotLocked
				}
			}
		}
	}
	return s.fail(ctx, "unlock", name, err)
}

func (s *session) LockHolder(ctx context.Context, name string) (driver.LockHolder, error) {
	if err := s.check("lock holder", name); err != nil {
		return driver.LockHolder{}, err
	}
	var h driver.LockHolder
	var tok uint64
	err := s.db.QueryRowContext(ctx, lockHolderSQL, name).Scan(&h.Member, &tok, &h.Session)
	if err == nil {
		h.Token = driver.Token(tok)
		return h, nil
	}
	if err == sql.ErrNoRows {
		// A tooz holder has no member, token or session to show.
		var used sql.NullInt64
		if qerr := s.db.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", name).Scan(&used); qerr == nil && used.Valid {
			return driver.LockHolder{}, nil
		}
		err = driver.ErrNotLocked
	}
	return driver.LockHolder{}, s.fail(ctx, "lock holder", name, err)
}

func (s *session) BreakLock(ctx context.Context, name string) error {
	if err := s.check("break lock", name); err != nil {
		return err
	}
	res, err := s.exec(ctx, `DELETE l FROM muster_locks l JOIN muster_sessions s ON s.id = l.session_id
		WHERE l.name = ? AND `+live, name)
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			err = driver.ErrNotLocked
			var used sql.NullInt64
			if qerr := s.db.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", name).Scan(&used); qerr == nil && used.Valid {
				err = fmt.Errorf("%w: muster cannot break it", errToozHeld)
			}
		}
	}
	return s.fail(ctx, "break lock", name, err)
}
