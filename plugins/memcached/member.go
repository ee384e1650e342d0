package memcached

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/musterhq/muster/servicegroup/driver"
)

// maxSeen bounds session.seen; past it the map starts afresh, which only
// costs each member one more round trip.
const maxSeen = 1024

var _ driver.MemberGetter = (*session)(nil)

// Member reads one member as Members would list it, without reading the
// others' liveness. A muster member's liveness key is named by the session
// in its entry, which only the group record says; so one multi-get reads
// the group record, the forced-down marks, tooz's liveness key of member
// and the key of the session member was last seen with (this session's
// own for itself). That is the only round trip while the member keeps its
// session; a new session costs one more get. A tooz member, whose key
// carries no stamp, costs a read of the server's clock, as in Members.
// Dead entries are left for Members to prune.
func (s *session) Member(ctx context.Context, g, member string) (out driver.Member, err error) {
	check := checkGroup(g)
	if check == nil {
		check = driver.ValidateName("member", member)
	}
	err = s.run(ctx, "member", g, check, driver.ErrSessionLost, func() error {
		gk, dk, mk := s.key(groupKey(g)), s.key(downKey(g)), s.key(memberKey(member))
		keys := []string{gk, dk, mk}
		if sid := s.seenSession(member); sid != "" {
			keys = append(keys, s.key(sessionKey(sid)))
		}
		items, err := s.mc.GetMulti(keys)
		if err != nil {
			return err
		}
		it := items[gk]
		if it == nil {
			return driver.ErrGroupNotFound
		}
		e, err := findEntry(it.Value, member)
		if errors.Is(err, errNoGroup) {
			return driver.ErrGroupNotFound
		}
		if err != nil {
			return err
		}
		if e == nil {
			return fmt.Errorf("%w: %q", driver.ErrNotMember, member)
		}
		lk := s.livenessKey(member, e)
		li, read := items[lk], slices.Contains(keys, lk)
		if !read {
			if li, err = s.mc.Get(lk); errors.Is(err, memcache.ErrCacheMiss) {
				li = nil
			} else if err != nil {
				return err
			}
		}
		ok, stamp := alive(member, e, li)
		if !ok {
			return fmt.Errorf("%w: %q (its session has ended)", driver.ErrNotMember, member)
		}
		if e.session != "" {
			s.see(member, e.session)
		}
		if stamp == 0 { // tooz's member: the server's now, as Members says
			t, err := s.clock.now(gk)
			if err != nil {
				return err
			}
			stamp = t * int64(time.Second)
		}
		var down []string
		if d := items[dk]; d != nil {
			down, _ = decodeNames(d.Value)
		}
		out = newMember(member, e, stamp, down)
		return nil
	})
	return out, err
}

// seenSession is the session member was last seen joined by; for this
// session's own member, this session until seen otherwise.
func (s *session) seenSession(member string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sid, ok := s.seen[member]; ok || member != s.member {
		return sid
	}
	return s.id
}

// see records the session member was found joined by.
func (s *session) see(member, sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[member]; !ok && len(s.seen) >= maxSeen {
		clear(s.seen)
	}
	s.seen[member] = sid
}
