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
	unlockSQL = `DELETE l FROM muster_locks l JOIN muster_sessions s ON s.id = l.session_id
		WHERE l.name = ? AND l.session_id = ? AND l.token = ? AND ` + live
)

func (s *session) TryLock(ctx context.Context, name string) (driver.Token, error) {
	if err := s.check("lock", name); err != nil {
		return 0, err
	}
	var tok uint64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// tooz locks name with GET_LOCK(name): refuse a lock it holds.
		var free sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT IS_FREE_LOCK(?)", name).Scan(&free); err != nil {
			if len(name) <= maxUserLockName {
				return err
			}
		} else if free.Valid && free.Int64 == 0 {
			return fmt.Errorf("%w: %w", driver.ErrLockHeld, errToozHeld)
		}
		var holder string
		err := tx.QueryRowContext(ctx, lockRowSQL, name).Scan(&holder)
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return err
		default:
			var alive int
			if err := tx.QueryRowContext(ctx, sessionAliveSQL, holder).Scan(&alive); err != nil {
				return err
			}
			if alive > 0 {
				return driver.ErrLockHeld
			}
			// Its holder's session expired: the lock is free to take.
			if _, err := tx.ExecContext(ctx, "DELETE FROM muster_locks WHERE name = ?", name); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO muster_locks (name, session_id, member, token, acquired_at)
			SELECT ?, s.id, s.member, 0, CURRENT_TIMESTAMP(6) FROM muster_sessions s WHERE s.id = ? AND `+live,
			name, s.id)
		if err != nil {
			if mysqlErrno(err) == erDupEntry {
				return driver.ErrLockHeld
			}
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return driver.ErrSessionLost
		}
		// The token is drawn only once this transaction owns the row.
		// Drawn before it (READ COMMITTED takes no gap lock on the free
		// name), another TryLock could take and release the lock in
		// between with a later token, and this holder would come after it
		// with a smaller one: tokens must grow with each holder.
		res, err = tx.ExecContext(ctx, "INSERT INTO muster_tokens () VALUES ()")
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		tok = uint64(id)
		_, err = tx.ExecContext(ctx, "UPDATE muster_locks SET token = ? WHERE name = ?", tok, name)
		return err
	})
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

func (s *session) Unlock(ctx context.Context, name string, token driver.Token) error {
	if err := s.check("unlock", name); err != nil {
		return err
	}
	res, err := s.exec(ctx, unlockSQL, name, s.id, uint64(token))
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			var alive int
			if err = s.db.QueryRowContext(ctx, sessionAliveSQL, s.id).Scan(&alive); err == nil {
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
