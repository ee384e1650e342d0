package file

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/driver"
)

// TryLock takes the lock if nobody alive holds it, with the next token.
func (s *session) TryLock(ctx context.Context, name string) (driver.Token, error) {
	const op = "lock"
	end, err := s.begin(ctx, op, name, driver.ErrSessionLost)
	if err != nil {
		return 0, err
	}
	defer end()
	if err := checkName("lock", name); err != nil {
		return 0, driver.Errorf(backend, op, name, err)
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return 0, driver.Errorf(backend, op, name, err)
	}
	defer unlock()
	j, err := s.judge()
	if err != nil {
		return 0, driver.Errorf(backend, op, name, err)
	}
	if ok, err := s.aliveLocked(j); err != nil || !ok {
		return 0, driver.Errorf(backend, op, name, errOr(err, driver.ErrSessionLost))
	}
	rec, held, err := s.readLock(j, name)
	switch {
	case errors.Is(err, errGarbage):
		// The last token is lost. The filesystem's now in nanoseconds is
		// larger than any token this lock has issued: tokens count up by
		// one per holder, far slower than the clock.
		s.log.Warn("file: replacing an unparseable lock record", zap.String("lock", name))
		rec = lockRecord{token: driver.Token(max(j.now.UnixNano(), 0))}
	case err != nil:
		return 0, driver.Errorf(backend, op, name, err)
	case held:
		return 0, driver.Errorf(backend, op, name, driver.ErrLockHeld)
	case rec.session != "":
		// Its holder is dead: tidy up everything that session left.
		if err := s.reapLocked(map[string]string{rec.session: rec.member}); err != nil {
			return 0, driver.Errorf(backend, op, name, err)
		}
	}
	next := lockRecord{token: rec.token + 1, session: s.id, member: s.member, ttl: s.ttl}
	if err := s.writeFile(s.path(locksDir, name), next.encode()); err != nil {
		return 0, driver.Errorf(backend, op, name, err)
	}
	return next.token, nil
}

// Unlock frees the lock if this session holds it with token.
func (s *session) Unlock(ctx context.Context, name string, token driver.Token) error {
	const op = "unlock"
	end, err := s.begin(ctx, op, name, lostNot(driver.ErrNotLocked))
	if err != nil {
		return err
	}
	defer end()
	if err := checkName("lock", name); err != nil {
		return driver.Errorf(backend, op, name, err)
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return driver.Errorf(backend, op, name, err)
	}
	defer unlock()
	j, err := s.judge()
	if err != nil {
		return driver.Errorf(backend, op, name, err)
	}
	if ok, err := s.aliveLocked(j); err != nil || !ok {
		return driver.Errorf(backend, op, name, errOr(err, lostNot(driver.ErrNotLocked)))
	}
	rec, held, err := s.readLock(j, name)
	if err != nil && !errors.Is(err, errGarbage) {
		return driver.Errorf(backend, op, name, err)
	}
	if !held || rec.session != s.id || rec.token != token {
		return driver.Errorf(backend, op, name, driver.ErrNotLocked)
	}
	return driver.Errorf(backend, op, name, s.writeFile(s.path(locksDir, name), lockRecord{token: rec.token}.encode()))
}

// LockHolder reads the lock record without the flock.
func (s *session) LockHolder(ctx context.Context, name string) (driver.LockHolder, error) {
	const op = "lock holder"
	end, err := s.begin(ctx, op, name, driver.ErrSessionLost)
	if err != nil {
		return driver.LockHolder{}, err
	}
	defer end()
	if err := checkName("lock", name); err != nil {
		return driver.LockHolder{}, driver.Errorf(backend, op, name, err)
	}
	j, err := s.judge()
	if err != nil {
		return driver.LockHolder{}, driver.Errorf(backend, op, name, err)
	}
	rec, held, err := s.readLock(j, name)
	if err != nil && !errors.Is(err, errGarbage) {
		return driver.LockHolder{}, driver.Errorf(backend, op, name, err)
	}
	if !held {
		return driver.LockHolder{}, driver.Errorf(backend, op, name, driver.ErrNotLocked)
	}
	return driver.LockHolder{Member: rec.member, Token: rec.token}, nil
}

// BreakLock frees the lock whoever holds it; the token count goes on.
func (s *session) BreakLock(ctx context.Context, name string) error {
	const op = "break lock"
	end, err := s.begin(ctx, op, name, driver.ErrSessionLost)
	if err != nil {
		return err
	}
	defer end()
	if err := checkName("lock", name); err != nil {
		return driver.Errorf(backend, op, name, err)
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return driver.Errorf(backend, op, name, err)
	}
	defer unlock()
	j, err := s.judge()
	if err != nil {
		return driver.Errorf(backend, op, name, err)
	}
	rec, held, err := s.readLock(j, name)
	if err != nil && !errors.Is(err, errGarbage) {
		return driver.Errorf(backend, op, name, err)
	}
	if !held {
		return driver.Errorf(backend, op, name, driver.ErrNotLocked)
	}
	s.log.Info("file: breaking a lock", zap.String("lock", name),
		zap.String("holder", rec.member), zap.Uint64("token", uint64(rec.token)))
	return driver.Errorf(backend, op, name, s.writeFile(s.path(locksDir, name), lockRecord{token: rec.token}.encode()))
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
