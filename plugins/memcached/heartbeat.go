package memcached

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/musterhq/muster/servicegroup/driver"
)

// errGone says a record the session owns vanished or changed behind its
// back (evicted, a server restart, deleted out of band).
var errGone = errors.New("record gone")

// Heartbeat renews the session: it reads the server's clock and, at the
// same time, the session key, every joined group and every held lock in
// one multi-get, and then renews them with compare-and-swap, so nothing
// is renewed that someone else replaced meanwhile. The session is lost
// (ErrSessionLost, Done closed) when its own key or one of its memberships
// is gone: the core then opens a new session and re-joins. A held lock
// found gone or taken is dropped; the core's check of its locks reports it
// lost.
func (s *session) Heartbeat(ctx context.Context) error {
	const op = "heartbeat"
	if err := s.begin(ctx, op, s.member, driver.ErrSessionLost); err != nil {
		return err
	}
	sent := time.Now()
	err := s.heartbeat()
	if errors.Is(err, errGone) {
		s.lose(err.Error())
		return driver.Errorf(backend, op, s.member, fmt.Errorf("%w: %v", driver.ErrSessionLost, err))
	}
	if err != nil {
		return driver.Errorf(backend, op, s.member, s.wrap(err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return driver.Errorf(backend, op, s.member, driver.ErrClosed)
	case s.lost || time.Since(sent) >= s.ttl:
		s.loseLocked("heartbeat answered after the TTL")
		return driver.Errorf(backend, op, s.member, driver.ErrSessionLost)
	}
	s.renewed = sent
	s.timer.Reset(s.ttl - time.Since(sent))
	return nil
}

func (s *session) heartbeat() error {
	s.beat.Lock()
	defer s.beat.Unlock()
	sk := s.key(sessionKey(s.id))
	// The clock (on a connection of its own) is read while the records
	// are: one round trip of waiting, not two.
	type reading struct {
		now int64
		err error
	}
	clock := make(chan reading, 1)
	go func() {
		now, err := s.clock.now(sk)
		clock <- reading{now, err}
	}()

	s.memb.Lock()
	s.mu.Lock()
	groups := make([]string, 0, len(s.joined))
	for g := range s.joined {
		groups = append(groups, g)
	}
	locks := make(map[string]uint64, len(s.locks))
	for n, tok := range s.locks {
		locks[n] = tok
	}
	s.mu.Unlock()
	keys := make([]string, 0, 1+len(groups)+len(locks))
	keys = append(keys, sk)
	for _, g := range groups {
		keys = append(keys, s.key(groupKey(g)))
	}
	for n := range locks {
		keys = append(keys, s.key(lockKey(n)))
	}
	items, err := s.mc.GetMulti(keys)
	c := <-clock
	if err != nil {
		s.memb.Unlock()
		return err
	}
	err = s.checkOwn(items, groups)
	s.memb.Unlock()
	if err != nil {
		return err
	}
	if c.err != nil {
		return c.err
	}
	now := c.now

	// Renew the session key, only if nobody replaced it since the read.
	it := items[sk]
	stamp := max(now*int64(time.Second), s.lastStamp()+int64(time.Microsecond))
	for i := 0; ; i++ {
		it.Value = mustMarshal(sessionRecord{Member: s.member, Stamp: stamp, Expiry: s.expiry})
		it.Expiration = s.expiry
		err := s.mc.CompareAndSwap(it)
		if err == nil {
			break
		}
		if errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss) {
			return fmt.Errorf("%w: the session key vanished (expired, evicted, deleted or a server restart)", errGone)
		}
		if !errors.Is(err, memcache.ErrCASConflict) {
			return err
		}
		// Changed since the read: a tombstone ends the session; anything
		// else of ours (a heartbeat abandoned by its caller that still
		// landed) is renewed again.
		if i == maxRetries {
			return errContention
		}
		if it, err = s.mc.Get(sk); errors.Is(err, memcache.ErrCacheMiss) {
			return fmt.Errorf("%w: the session key vanished (expired, evicted, deleted or a server restart)", errGone)
		} else if err != nil {
			return err
		}
		var rec sessionRecord
		if err := msgpack.Unmarshal(it.Value, &rec); err != nil || rec.Ended || rec.Member != s.member {
			return fmt.Errorf("%w: the session was ended by a later session of its instance", errGone)
		}
		stamp = max(stamp, rec.Stamp+int64(time.Microsecond))
	}
	s.mu.Lock()
	s.stamp = stamp
	s.mu.Unlock()

	// tooz's liveness key, which tooz readers check before they prune.
	if len(groups) > 0 {
		if err := s.mc.Set(s.toozMember()); err != nil {
			return err
		}
	}
	for n, tok := range locks {
		it := items[s.key(lockKey(n))]
		if it != nil {
			if rec := decodeLock(it.Flags, it.Value); rec.Session == s.id && rec.Token == tok {
				it.Expiration = s.expiry
				err := s.mc.CompareAndSwap(it)
				if err == nil {
					continue
				}
				if !errors.Is(err, memcache.ErrCASConflict) && !errors.Is(err, memcache.ErrNotStored) && !errors.Is(err, memcache.ErrCacheMiss) {
					return err
				}
			}
		}
		s.log.Warn("memcached: a held lock vanished or was taken")
		s.mu.Lock()
		if s.locks[n] == tok {
			delete(s.locks, n)
		}
		s.mu.Unlock()
	}
	return nil
}

// checkOwn checks the session key and every membership read by the
// heartbeat are still this session's.
func (s *session) checkOwn(items map[string]*memcache.Item, groups []string) error {
	it := items[s.key(sessionKey(s.id))]
	if it == nil {
		return fmt.Errorf("%w: the session key vanished (expired, evicted, deleted or a server restart)", errGone)
	}
	var rec sessionRecord
	if err := msgpack.Unmarshal(it.Value, &rec); err != nil || rec.Ended || rec.Member != s.member {
		return fmt.Errorf("%w: the session was ended by a later session of its instance", errGone)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range groups {
		if !s.joined[g] {
			continue
		}
		it := items[s.key(groupKey(g))]
		if it == nil {
			return fmt.Errorf("%w: the record of group %q vanished", errGone, g)
		}
		gr, err := decodeGroup(it.Value)
		if err != nil {
			return fmt.Errorf("%w: the record of group %q: %v", errGone, g, err)
		}
		if e := gr.entries[s.member]; e == nil || e.session != s.id {
			return fmt.Errorf("%w: the membership in group %q vanished", errGone, g)
		}
	}
	return nil
}

func (s *session) lastStamp() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stamp
}

// toozMember is tooz's liveness key of this member, naming the session.
func (s *session) toozMember() *memcache.Item {
	return &memcache.Item{Key: s.key(memberKey(s.member)), Value: []byte("muster:" + s.id), Flags: flagRaw, Expiration: s.expiry}
}

// Close leaves every group and frees every lock at once, and removes the
// session's keys. It removes only what still names this session, so the
// Close of a lost session never touches what others hold now. It is
// idempotent.
func (s *session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	wasLost := s.lost
	if s.timer != nil {
		s.timer.Stop()
	}
	if !s.lost {
		close(s.done)
	}
	groups := make([]string, 0, len(s.joined))
	for g := range s.joined {
		groups = append(groups, g)
	}
	locks := s.locks
	s.joined, s.locks = map[string]bool{}, map[string]uint64{}
	s.mu.Unlock()
	defer s.clock.close()
	defer s.mc.Close()

	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for n, tok := range locks {
		if ctx.Err() != nil {
			break
		}
		_, err := s.releaseLock(n, tok)
		keep(err)
	}
	for _, g := range groups {
		if ctx.Err() != nil {
			break
		}
		keep(ignore(s.removeEntry(g), driver.ErrGroupNotFound, driver.ErrNotMember))
	}
	if ctx.Err() == nil && len(groups) > 0 {
		keep(s.deleteIf(memberKey(s.member), func(it *memcache.Item) bool { return string(it.Value) == "muster:"+s.id }))
	}
	if ctx.Err() == nil {
		keep(s.deleteIf(sessionKey(s.id), func(it *memcache.Item) bool {
			var rec sessionRecord
			return msgpack.Unmarshal(it.Value, &rec) == nil && !rec.Ended
		}))
	}
	if ctx.Err() == nil && s.instance != "" {
		keep(s.deleteIf(instanceKey(s.instance), func(it *memcache.Item) bool { return string(it.Value) == s.id }))
	}
	keep(ctx.Err())
	if wasLost || first == nil {
		return nil
	}
	return driver.Errorf(backend, "close", s.member, s.wrap(first))
}

// deleteIf deletes key if its value passes keep, atomically: a
// compare-and-swap with a negative expiry is memcached's compare-and-delete.
func (s *session) deleteIf(k string, ok func(*memcache.Item) bool) error {
	for range 10 {
		it, err := s.mc.Get(s.key(k))
		if errors.Is(err, memcache.ErrCacheMiss) {
			return nil
		}
		if err != nil {
			return err
		}
		if !ok(it) {
			return nil
		}
		err = s.casDelete(it)
		if !errors.Is(err, memcache.ErrCASConflict) {
			return ignoreMC(err)
		}
	}
	return fmt.Errorf("deleting %s: too much contention", k)
}

// casDelete deletes it if it has not changed since it was read.
func (s *session) casDelete(it *memcache.Item) error {
	it.Expiration = -1
	return s.mc.CompareAndSwap(it)
}

// ignoreMC treats a key already gone as deleted.
func ignoreMC(err error) error {
	if errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss) {
		return nil
	}
	return err
}

func ignore(err error, sentinels ...error) error {
	for _, e := range sentinels {
		if errors.Is(err, e) {
			return nil
		}
	}
	return err
}
