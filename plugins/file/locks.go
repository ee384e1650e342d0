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
		h, err := s.openLock(name)
		if errors.Is(err, errGarbage) {
			// Not a file muster wrote (whole files are written by rename,
			// slots are checksummed): it is not ours to replace.
			return fmt.Errorf("%s is not a muster lock record; refusing to replace it", s.path(locksDir, name))
		}
		if err != nil {
			return err
		}
		defer h.close()
		rec := h.lf.cur
		if rec.session != "" {
			_, held, err := j.alive(rec.session, rec.ttl)
			switch {
			case err != nil:
				return err
			case held:
				return driver.ErrLockHeld
			}
			// Its holder is dead: tidy up everything that session left.
			if err := s.reapLocked(map[string]string{rec.session: rec.member}); err != nil {
				return err
			}
		}
		// Above every token issued, durably (see lockfile.go): after a
		// power cut no smaller next token can come back.
		next := lockRecord{token: h.lf.lastIssued(s.host.boot) + 1, session: s.id, member: s.member, ttl: s.ttl}
		if err := s.put(h, next, true); err != nil {
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
		h, err := s.openLock(name)
		if errors.Is(err, errGarbage) {
			return driver.ErrNotLocked
		}
		if err != nil {
			return err
		}
		defer h.close()
		if rec := h.lf.cur; rec.session != s.id || rec.token != token {
			return driver.ErrNotLocked
		}
		if err := s.put(h, lockRecord{token: token}, false); err != nil {
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
		j, err := s.judge()
		if err != nil {
			return err
		}
		h, err := s.openLock(name)
		if errors.Is(err, errGarbage) {
			return driver.ErrNotLocked
		}
		if err != nil {
			return err
		}
		defer h.close()
		rec := h.lf.cur
		if rec.session == "" {
			return driver.ErrNotLocked
		}
		if _, held, err := j.alive(rec.session, rec.ttl); err != nil || !held {
			return errOr(err, driver.ErrNotLocked)
		}
		s.log.Info("file: breaking a lock", zap.String("lock", name),
			zap.String("holder", rec.member), zap.Uint64("token", uint64(rec.token)))
		return s.put(h, lockRecord{token: rec.token}, false)
	})
}

// heldLock reads the record of a held lock; ErrNotLocked when it is free.
func (s *session) heldLock(name string) (lockRecord, error) {
	j, err := s.judge()
	if err != nil {
		return lockRecord{}, err
	}
	lf, exists, err := readLockFile(s.path(locksDir, name))
	if err != nil && !errors.Is(err, errGarbage) {
		return lockRecord{}, err
	}
	if !exists || err != nil || lf.cur.session == "" {
		return lockRecord{}, driver.ErrNotLocked
	}
	_, held, err := j.alive(lf.cur.session, lf.cur.ttl)
	if err != nil {
		return lockRecord{}, err
	}
	if !held {
		return lockRecord{}, driver.ErrNotLocked
	}
	return lf.cur, nil
}

// SessionID is this session's id: the one its lock records carry, and
// LockHolder reports as Session.
func (s *session) SessionID() string { return s.id }
