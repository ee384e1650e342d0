package memcached

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/musterhq/muster/servicegroup/driver"
)

// tokenShift: a re-seeded counter starts at the server's time in seconds
// shifted by this much, above every token issued before (see nextToken).
const tokenShift = 20

// TryLock takes the lock with add (as tooz does, on tooz's key), then
// draws the next fencing token and writes it into the record it holds
// with a compare-and-swap. A lock whose holder's session was ended by a
// later session of its instance is taken over.
func (s *session) TryLock(ctx context.Context, name string) (token driver.Token, err error) {
	err = s.run(ctx, "lock", name, checkLock(name), driver.ErrSessionLost, func() error {
		k := s.key(lockKey(name))
		pending := mustMarshal(lockRecord{Member: s.member, Session: s.id})
		err := s.mc.Add(&memcache.Item{Key: k, Value: pending, Flags: flagMsgpack, Expiration: s.expiry})
		if errors.Is(err, memcache.ErrNotStored) {
			err = s.takeOver(k, pending)
		}
		if err != nil {
			return err
		}
		tok, err := s.confirm(name, k)
		if err != nil {
			_ = s.deleteIf(lockKey(name), func(it *memcache.Item) bool {
				r := decodeLock(it.Flags, it.Value)
				return r.Session == s.id && r.Token == 0
			})
			return err
		}
		s.mu.Lock()
		lost := s.lost || s.closed
		if !lost {
			s.locks[name] = tok
		}
		s.mu.Unlock()
		if lost {
			_, _ = s.releaseLock(name, tok)
			return driver.ErrSessionLost
		}
		token = driver.Token(tok)
		return nil
	})
	return token, err
}

// takeOver takes a held lock whose holder's session is a tombstone;
// otherwise ErrLockHeld.
func (s *session) takeOver(k string, pending []byte) error {
	it, err := s.mc.Get(k)
	if errors.Is(err, memcache.ErrCacheMiss) {
		// Freed meanwhile: try once more.
		err = s.mc.Add(&memcache.Item{Key: k, Value: pending, Flags: flagMsgpack, Expiration: s.expiry})
		if errors.Is(err, memcache.ErrNotStored) {
			return driver.ErrLockHeld
		}
		return err
	}
	if err != nil {
		return err
	}
	rec := decodeLock(it.Flags, it.Value)
	if rec.Session == "" || rec.Session == s.id || !s.ended(rec.Session) {
		return driver.ErrLockHeld
	}
	it.Value, it.Flags, it.Expiration = pending, flagMsgpack, s.expiry
	if err := s.mc.CompareAndSwap(it); err != nil {
		if errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss) {
			return driver.ErrLockHeld
		}
		return err
	}
	return nil
}

// ended reports whether a session's key is a tombstone: ended by a later
// session of its instance. A missing key is not enough (it may have been
// evicted while its session still runs): such a holder's lock is freed
// by its expiry.
func (s *session) ended(id string) bool {
	it, err := s.mc.Get(s.key(sessionKey(id)))
	if err != nil {
		return false
	}
	var rec sessionRecord
	return msgpack.Unmarshal(it.Value, &rec) == nil && rec.Ended
}

// confirm draws a token for the pending holding at k and writes it in, if
// the holding is still this session's.
func (s *session) confirm(name, k string) (uint64, error) {
	tok, err := s.nextToken(name)
	if err != nil {
		return 0, err
	}
	it, err := s.mc.Get(k)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return 0, driver.ErrLockHeld
	}
	if err != nil {
		return 0, err
	}
	if r := decodeLock(it.Flags, it.Value); r.Session != s.id || r.Token != 0 {
		return 0, driver.ErrLockHeld
	}
	it.Value = mustMarshal(lockRecord{Member: s.member, Session: s.id, Token: tok})
	it.Expiration = s.expiry
	if err := s.mc.CompareAndSwap(it); err != nil {
		if errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss) {
			return 0, driver.ErrLockHeld
		}
		return 0, err
	}
	return tok, nil
}

// nextToken increments the lock's counter. A counter that is missing
// (never used, evicted, or lost with a server restart) is seeded with the
// server's time in seconds << tokenShift: larger than any token issued
// before, as long as the server's clock has moved on by a second since
// the last seeding and fewer than 2^20 tokens were drawn per second since.
// Tokens are drawn only while holding the lock, so successive holders get
// increasing ones.
func (s *session) nextToken(name string) (uint64, error) {
	k := s.key(tokenKey(name))
	for range 10 {
		v, err := s.mc.Increment(k, 1)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, memcache.ErrCacheMiss) {
			return 0, err
		}
		t, err := s.clock.now(k)
		if err != nil {
			return 0, err
		}
		seed := uint64(t) << tokenShift
		err = s.mc.Add(&memcache.Item{Key: k, Value: []byte(strconv.FormatUint(seed, 10))})
		if err == nil {
			return seed, nil
		}
		if !errors.Is(err, memcache.ErrNotStored) {
			return 0, err
		}
	}
	return 0, errContention
}

// releaseLock frees name if this session holds it with tok, with
// memcached's compare-and-delete (a compare-and-swap to a negative
// expiry): a holder whose lock expired and was taken never frees the new
// holder's. It reports whether it freed it.
func (s *session) releaseLock(name string, tok uint64) (bool, error) {
	for range maxRetries {
		it, err := s.mc.Get(s.key(lockKey(name)))
		if errors.Is(err, memcache.ErrCacheMiss) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if r := decodeLock(it.Flags, it.Value); r.Session != s.id || r.Token != tok {
			return false, nil
		}
		err = s.casDelete(it)
		if errors.Is(err, memcache.ErrCASConflict) {
			continue // renewed by the heartbeat meanwhile: look again
		}
		if errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss) {
			return false, nil
		}
		return err == nil, err
	}
	return false, errContention
}

// Unlock frees the lock if this session holds it with token.
func (s *session) Unlock(ctx context.Context, name string, token driver.Token) error {
	lostErr := fmt.Errorf("%w: %w", driver.ErrNotLocked, driver.ErrSessionLost)
	return s.run(ctx, "unlock", name, checkLock(name), lostErr, func() error {
		s.mu.Lock()
		if s.locks[name] == uint64(token) {
			delete(s.locks, name)
		}
		s.mu.Unlock()
		freed, err := s.releaseLock(name, uint64(token))
		if err != nil {
			return err
		}
		if !freed {
			return driver.ErrNotLocked
		}
		return nil
	})
}

// LockHolder reads the lock's record: muster's holders come with their
// token and session, tooz's with their member id only.
func (s *session) LockHolder(ctx context.Context, name string) (h driver.LockHolder, err error) {
	err = s.run(ctx, "lock holder", name, checkLock(name), driver.ErrSessionLost, func() error {
		it, err := s.mc.Get(s.key(lockKey(name)))
		if errors.Is(err, memcache.ErrCacheMiss) {
			return driver.ErrNotLocked
		}
		if err != nil {
			return err
		}
		r := decodeLock(it.Flags, it.Value)
		if r.Session != "" && r.Session != s.id && s.ended(r.Session) {
			return driver.ErrNotLocked
		}
		h = driver.LockHolder{Member: r.Member, Token: driver.Token(r.Token), Session: r.Session}
		return nil
	})
	if err != nil {
		return driver.LockHolder{}, err
	}
	return h, nil
}

// BreakLock frees the lock whoever holds it (tooz's holders too); the
// token counter goes on.
func (s *session) BreakLock(ctx context.Context, name string) error {
	return s.run(ctx, "break lock", name, checkLock(name), driver.ErrSessionLost, func() error {
		for range maxRetries {
			it, err := s.mc.Get(s.key(lockKey(name)))
			if errors.Is(err, memcache.ErrCacheMiss) {
				return driver.ErrNotLocked
			}
			if err != nil {
				return err
			}
			err = s.casDelete(it)
			if errors.Is(err, memcache.ErrCASConflict) {
				continue
			}
			if errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss) {
				return driver.ErrNotLocked
			}
			return err
		}
		return errContention
	})
}
