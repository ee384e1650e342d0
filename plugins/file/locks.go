package file

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/driver"
)

// TryLock takes the lock if nobody alive holds it, with the next token.
func (s *session) TryLock(ctx context.Context, name string) (token driver.Token, err error) {
	err = s.run(ctx, "lock", name, driver.ErrSessionLost, checkName("lock", name), locked, func() error {
		j, err := s.judge()
		if err != nil {
			return err
		}
		if ok, err := s.aliveLocked(j); err != nil || !ok {
			return errOr(err, driver.ErrSessionLost)
		}
		rec, held, err := s.readLock(j, name)
		switch {
		case errors.Is(err, errGarbage):
			// Not a record muster wrote (writes are renames, so never half
			// of one): it is not ours to replace.
			return fmt.Errorf("%s is not a muster lock record; refusing to replace it", s.path(locksDir, name))
		case err != nil:
			return err
		case held:
			return driver.ErrLockHeld
		case rec.session != "":
			// Its holder is dead: tidy up everything that session left.
			if err := s.reapLocked(map[string]string{rec.session: rec.member}); err != nil {
				return err
			}
		}
		next := lockRecord{token: rec.token + 1, session: s.id, member: s.member, ttl: s.ttl}
		// Durable before the token is handed out: after a power cut no
		// older record (and so no smaller next token) can come back.
		if err := s.write(s.path(locksDir, name), next.encode(), syncLocks); err != nil {
			return err
		}
		token = next.token
		s.holding(name, true)
		return nil
	})
	return token, err
}

// Unlock frees the lock if this session holds it with token.
func (s *session) Unlock(ctx context.Context, name string, token driver.Token) error {
	notLocked := lostNot(driver.ErrNotLocked)
	return s.run(ctx, "unlock", name, notLocked, checkName("lock", name), locked, func() error {
		j, err := s.judge()
		if err != nil {
			return err
		}
		if ok, err := s.aliveLocked(j); err != nil || !ok {
			return errOr(err, notLocked)
		}
		rec, held, err := s.readLock(j, name)
		if err != nil && !errors.Is(err, errGarbage) {
			return err
		}
		if !held || rec.session != s.id || rec.token != token {
			return driver.ErrNotLocked
		}
		if err := s.writeFile(s.path(locksDir, name), lockRecord{token: rec.token}.encode()); err != nil {
			return err
		}
		s.holding(name, false)
		return nil
	})
}

// LockHolder reads the lock record without the flock.
func (s *session) LockHolder(ctx context.Context, name string) (holder driver.LockHolder, err error) {
	err = s.run(ctx, "lock holder", name, driver.ErrSessionLost, checkName("lock", name), unlocked, func() error {
		rec, err := s.heldLock(name)
		holder = driver.LockHolder{Member: rec.member, Token: rec.token, Session: rec.session}
		return err
	})
	if err != nil {
		return driver.LockHolder{}, err
	}
	return holder, nil
}

// BreakLock frees the lock whoever holds it; the token count goes on.
func (s *session) BreakLock(ctx context.Context, name string) error {
	return s.run(ctx, "break lock", name, driver.ErrSessionLost, checkName("lock", name), locked, func() error {
		rec, err := s.heldLock(name)
		if err != nil {
			return err
		}
		s.log.Info("file: breaking a lock", zap.String("lock", name),
			zap.String("holder", rec.member), zap.Uint64("token", uint64(rec.token)))
		return s.writeFile(s.path(locksDir, name), lockRecord{token: rec.token}.encode())
	})
}

// heldLock reads the record of a held lock; ErrNotLocked when it is free.
func (s *session) heldLock(name string) (lockRecord, error) {
	j, err := s.judge()
	if err != nil {
		return lockRecord{}, err
	}
	rec, held, err := s.readLock(j, name)
	if err != nil && !errors.Is(err, errGarbage) {
		return lockRecord{}, err
	}
	if !held {
		return lockRecord{}, driver.ErrNotLocked
	}
	return rec, nil
}

// readLock reads a lock record and says whether a live session holds it.
// A missing record is a free lock that never issued a token.
func (s *session) readLock(j *judge, name string) (rec lockRecord, held bool, err error) {
	b, err := readFile(s.path(locksDir, name))
	if err != nil || b == nil {
		return lockRecord{}, false, err
	}
	if rec, err = parseLock(b); err != nil {
		return lockRecord{}, false, err
	}
	if rec.session == "" {
		return rec, false, nil
	}
	_, ok, err := j.alive(rec.session, rec.ttl)
	return rec, ok, err
}

// SessionID is this session's id: the one its lock records carry, and
// LockHolder reports as Session.
func (s *session) SessionID() string { return s.id }
