package memcached

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/musterhq/muster/servicegroup/driver"
)

// maxRetries bounds every compare-and-swap loop.
const maxRetries = 100

var errContention = errors.New("too much contention on a record (compare-and-swap kept failing)")

// CreateGroup adds the group record (tooz's empty map) and the group to
// tooz's group list.
func (s *session) CreateGroup(ctx context.Context, g string) error {
	return s.run(ctx, "create group", g, checkGroup(g), driver.ErrSessionLost, func() error {
		err := s.mc.Add(s.item(groupKey(g), emptyGroup, 0))
		if errors.Is(err, memcache.ErrNotStored) {
			return driver.ErrGroupExists
		}
		if err != nil {
			return err
		}
		return s.editList(func(names []string) ([]string, bool) {
			if !slices.Contains(names, g) {
				names = append(names, g)
			}
			return names, true // written even if present: see DeleteGroup
		})
	})
}

// editList changes tooz's group list with a compare-and-swap loop; edit
// says whether to write.
func (s *session) editList(edit func([]string) ([]string, bool)) error {
	k := s.key(groupListKey)
	for range maxRetries {
		it, err := s.mc.Get(k)
		if errors.Is(err, memcache.ErrCacheMiss) {
			names, write := edit(nil)
			if !write {
				return nil
			}
			err = s.mc.Add(&memcache.Item{Key: k, Value: encodeNames(names), Flags: flagMsgpack})
			if errors.Is(err, memcache.ErrNotStored) {
				continue
			}
			return err
		}
		if err != nil {
			return err
		}
		names, err := decodeNames(it.Value)
		if err != nil {
			names = nil // unreadable: rebuilt from what follows
		}
		names, write := edit(names)
		if !write {
			return nil
		}
		it.Value = encodeNames(names)
		err = s.mc.CompareAndSwap(it)
		if errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) {
			continue
		}
		return err
	}
	return errContention
}

// DeleteGroup deletes a group without live members: a compare-and-delete
// of its record, then its forced-down marks and its place in the list.
func (s *session) DeleteGroup(ctx context.Context, g string) error {
	return s.run(ctx, "delete group", g, checkGroup(g), driver.ErrSessionLost, func() error {
		for i := 0; ; i++ {
			if i == maxRetries {
				return errContention
			}
			it, rec, err := s.getGroup(g)
			if err != nil {
				return err
			}
			live, err := s.liveEntries(rec)
			if err != nil {
				return err
			}
			if len(live) > 0 {
				return driver.ErrGroupNotEmpty
			}
			err = s.casDelete(it)
			if errors.Is(err, memcache.ErrCASConflict) {
				continue
			}
			if errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss) {
				return driver.ErrGroupNotFound
			}
			if err != nil {
				return err
			}
			break
		}
		if err := ignoreMC(s.mc.Delete(s.key(downKey(g)))); err != nil {
			return err
		}
		// Remove g from the list unless it was created again meanwhile.
		// CreateGroup always rewrites the list, so a create racing this
		// makes the compare-and-swap below fail and the check run again.
		return s.editList(func(names []string) ([]string, bool) {
			if !slices.Contains(names, g) {
				return nil, false
			}
			if _, err := s.mc.Get(s.key(groupKey(g))); err == nil {
				return nil, false
			}
			return slices.DeleteFunc(names, func(n string) bool { return n == g }), true
		})
	})
}

// Groups lists tooz's group list, less the groups whose record is gone.
func (s *session) Groups(ctx context.Context) (out []string, err error) {
	err = s.run(ctx, "list groups", "", nil, driver.ErrSessionLost, func() error {
		it, err := s.mc.Get(s.key(groupListKey))
		if errors.Is(err, memcache.ErrCacheMiss) {
			return nil
		}
		if err != nil {
			return err
		}
		names, err := decodeNames(it.Value)
		if err != nil {
			return fmt.Errorf("tooz's group list: %w", err)
		}
		keys := make([]string, 0, len(names))
		for _, n := range names {
			if checkGroup(n) == nil {
				keys = append(keys, s.key(groupKey(n)))
			}
		}
		items, err := s.mc.GetMulti(keys)
		if err != nil {
			return err
		}
		for _, n := range names {
			if it := items[s.key(groupKey(n))]; it != nil && len(it.Value) > 0 && it.Value[0] != 0xc0 && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return nil
	})
	return out, err
}

// getGroup reads a group record with its CAS id.
func (s *session) getGroup(g string) (*memcache.Item, *groupRecord, error) {
	it, err := s.mc.Get(s.key(groupKey(g)))
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, nil, driver.ErrGroupNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	rec, err := decodeGroup(it.Value)
	if errors.Is(err, errNoGroup) {
		return nil, nil, driver.ErrGroupNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	return it, rec, nil
}

// livenessKey is the key that says whether an entry is alive: its
// session's key, or for a member tooz joined, tooz's member key.
func (s *session) livenessKey(id string, e *entry) string {
	if e.session != "" {
		return s.key(sessionKey(e.session))
	}
	return s.key(memberKey(id))
}

// alive judges an entry by the liveness key read for it; it returns the
// session's stamp (0 for tooz's members).
func alive(id string, e *entry, it *memcache.Item) (bool, int64) {
	if it == nil {
		return false, 0
	}
	if e.session == "" {
		return true, 0
	}
	var rec sessionRecord
	if err := msgpack.Unmarshal(it.Value, &rec); err != nil || rec.Ended || rec.Member != id {
		return false, 0
	}
	return true, rec.Stamp
}

// liveEntries reads the liveness keys of every entry with one multi-get
// and returns the live ones with their stamps.
func (s *session) liveEntries(rec *groupRecord) (map[string]int64, error) {
	out := map[string]int64{}
	if len(rec.ids) == 0 {
		return out, nil
	}
	keys := make([]string, 0, len(rec.ids))
	for _, id := range rec.ids {
		keys = append(keys, s.livenessKey(id, rec.entries[id]))
	}
	items, err := s.mc.GetMulti(keys)
	if err != nil {
		return nil, err
	}
	for _, id := range rec.ids {
		e := rec.entries[id]
		if ok, stamp := alive(id, e, items[s.livenessKey(id, e)]); ok {
			out[id] = stamp
		}
	}
	return out, nil
}

// Join adds this session's member to the group with a compare-and-swap
// loop, as tooz does. An entry whose session is dead is replaced; a live
// one is ErrMemberExists and stays untouched. tooz's member key is set
// first, so a tooz reader never prunes the new entry.
func (s *session) Join(ctx context.Context, g string, caps []byte) error {
	return s.run(ctx, "join", g, checkGroup(g), driver.ErrSessionLost, func() error {
		s.memb.Lock()
		defer s.memb.Unlock()
		// tooz's member key (its readers' liveness of this member) is
		// written while the group record is read, on another connection:
		// one round trip of waiting, not two. The entry is written only
		// once the key's write has answered, so a tooz reader never finds
		// the entry without the key.
		set := make(chan error, 1)
		go func() { set <- s.mc.Set(s.toozMember()) }()
		wait := sync.OnceValue(func() error { return <-set })
		defer wait() // nothing of this Join outlives it
		for range maxRetries {
			it, rec, err := s.getGroup(g)
			if err != nil {
				return err
			}
			if e := rec.entries[s.member]; e != nil {
				if e.session == s.id {
					return fmt.Errorf("%w: %q", driver.ErrMemberExists, s.member)
				}
				lk := s.livenessKey(s.member, e)
				li, err := s.mc.Get(lk)
				if err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
					return err
				}
				if ok, _ := alive(s.member, e, li); ok {
					return fmt.Errorf("%w: %q", driver.ErrMemberExists, s.member)
				}
			}
			rec.put(s.member, &entry{caps: clone(caps), session: s.id})
			if it.Value, err = rec.encode(); err != nil {
				return err
			}
			if err := wait(); err != nil {
				return err
			}
			err = s.mc.CompareAndSwap(it)
			if errors.Is(err, memcache.ErrCASConflict) {
				continue
			}
			if errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss) {
				return driver.ErrGroupNotFound
			}
			if err != nil {
				return err
			}
			s.mu.Lock()
			s.joined[g] = true
			s.mu.Unlock()
			return nil
		}
		return errContention
	})
}

// editEntry changes this session's entry in g with a compare-and-swap
// loop: edit gets the entry (never nil) and says whether to remove it.
func (s *session) editEntry(g string, edit func(e *entry) (remove bool)) error {
	for range maxRetries {
		it, rec, err := s.getGroup(g)
		if err != nil {
			return err
		}
		e := rec.entries[s.member]
		if e == nil || e.session != s.id {
			return driver.ErrNotMember
		}
		if edit(e) {
			rec.remove(s.member)
		}
		if it.Value, err = rec.encode(); err != nil {
			return err
		}
		err = s.mc.CompareAndSwap(it)
		if errors.Is(err, memcache.ErrCASConflict) {
			continue
		}
		if errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss) {
			return driver.ErrGroupNotFound
		}
		return err
	}
	return errContention
}

// removeEntry removes this session's entry from g.
func (s *session) removeEntry(g string) error {
	return s.editEntry(g, func(*entry) bool { return true })
}

// Leave removes this session's member from the group.
func (s *session) Leave(ctx context.Context, g string) error {
	return s.run(ctx, "leave", g, checkGroup(g), driver.ErrSessionLost, func() error {
		s.memb.Lock()
		defer s.memb.Unlock()
		err := s.removeEntry(g)
		if err == nil || errors.Is(err, driver.ErrGroupNotFound) {
			s.mu.Lock()
			delete(s.joined, g)
			s.mu.Unlock()
		}
		return err
	})
}

// SetCapabilities replaces this member's capabilities in the group.
func (s *session) SetCapabilities(ctx context.Context, g string, caps []byte) error {
	return s.run(ctx, "set capabilities", g, checkGroup(g), driver.ErrSessionLost, func() error {
		s.memb.Lock()
		defer s.memb.Unlock()
		return s.editEntry(g, func(e *entry) bool { e.caps = clone(caps); return false })
	})
}

// Members lists the live members with a constant number of round trips
// whatever the group's size: one multi-get of the group record and its
// forced-down marks, one multi-get of every member's liveness key, and,
// only when tooz's members are listed, one read of the server's clock.
// Dead entries are pruned with a compare-and-swap, as tooz does.
func (s *session) Members(ctx context.Context, g string) (out []driver.Member, err error) {
	err = s.run(ctx, "members", g, checkGroup(g), driver.ErrSessionLost, func() error {
		st, err := s.readGroup(g)
		if err != nil {
			return err
		}
		out = make([]driver.Member, 0, len(st.live))
		for _, id := range st.rec.ids {
			if stamp, ok := st.live[id]; ok {
				out = append(out, st.member(id, stamp))
			}
		}
		if len(st.live) < len(st.rec.ids) {
			s.prune(st.it, st.rec, st.live)
		}
		return nil
	})
	return out, err
}

// KnownMembers lists every entry of the group record, live or dead, and
// the forced-down names with no entry, in the round trips Members takes.
// It prunes nothing: a dead entry stays until a Members or Join finds it
// (tooz's readers prune too). Its session's key, and so its last renewal,
// expires with the session: a dead entry's UpdatedAt is zero.
func (s *session) KnownMembers(ctx context.Context, g string) (out []driver.KnownMember, err error) {
	err = s.run(ctx, "known members", g, checkGroup(g), driver.ErrSessionLost, func() error {
		st, err := s.readGroup(g)
		if err != nil {
			return err
		}
		out = make([]driver.KnownMember, 0, len(st.rec.ids)+len(st.down))
		for _, id := range st.rec.ids {
			stamp, ok := st.live[id]
			m := driver.KnownMember{Member: st.member(id, stamp), Live: ok}
			if !ok {
				m.UpdatedAt = time.Time{}
			}
			out = append(out, m)
		}
		for _, id := range st.down {
			if _, ok := st.rec.entries[id]; !ok {
				out = append(out, driver.KnownMember{Member: driver.Member{ID: id, ForcedDown: true}})
			}
		}
		return nil
	})
	return out, err
}

var _ driver.KnownMemberLister = (*session)(nil)

// groupRead is one read of a group and of its members' liveness.
type groupRead struct {
	it   *memcache.Item // the group record as read, for prune's CAS
	rec  *groupRecord
	down []string
	// live holds the live entries' stamps; tooz's members, which carry
	// none, get the server's now.
	live map[string]int64
}

func (st *groupRead) member(id string, stamp int64) driver.Member {
	return newMember(id, st.rec.entries[id], stamp, st.down)
}

// newMember is how Members and Member report an entry: stamp is its
// UpdatedAt (ns), down the group's forced-down marks.
func newMember(id string, e *entry, stamp int64, down []string) driver.Member {
	return driver.Member{ID: id, Capabilities: clone(e.caps),
		UpdatedAt: time.Unix(0, stamp), ForcedDown: slices.Contains(down, id)}
}

// readGroup reads group g for Members and KnownMembers.
func (s *session) readGroup(g string) (*groupRead, error) {
	gk, dk := s.key(groupKey(g)), s.key(downKey(g))
	items, err := s.mc.GetMulti([]string{gk, dk})
	if err != nil {
		return nil, err
	}
	it := items[gk]
	if it == nil {
		return nil, driver.ErrGroupNotFound
	}
	rec, err := decodeGroup(it.Value)
	if errors.Is(err, errNoGroup) {
		return nil, driver.ErrGroupNotFound
	}
	if err != nil {
		return nil, err
	}
	st := &groupRead{it: it, rec: rec}
	if d := items[dk]; d != nil {
		st.down, _ = decodeNames(d.Value)
	}
	if st.live, err = s.liveEntries(rec); err != nil {
		return nil, err
	}
	tooz := false
	for _, stamp := range st.live {
		tooz = tooz || stamp == 0
	}
	if tooz {
		t, err := s.clock.now(gk)
		if err != nil {
			return nil, err
		}
		for id, stamp := range st.live {
			if stamp == 0 {
				st.live[id] = t * int64(time.Second)
			}
		}
	}
	return st, nil
}

// prune drops dead entries from a group record, if it has not changed
// since it was read; a failure changes nothing and is left for the next
// reader.
func (s *session) prune(it *memcache.Item, rec *groupRecord, live map[string]int64) {
	for _, id := range slices.Clone(rec.ids) {
		if _, ok := live[id]; !ok {
			rec.remove(id)
		}
	}
	v, err := rec.encode()
	if err != nil {
		return
	}
	it.Value = v
	_ = s.mc.CompareAndSwap(it)
}

// SetForcedDown marks or clears a member as forced down: a list of its
// own per group, with no expiry, which outlives sessions and which tooz
// ignores.
func (s *session) SetForcedDown(ctx context.Context, g, member string, down bool) error {
	check := checkGroup(g)
	if check == nil {
		check = driver.ValidateName("member", member)
	}
	return s.run(ctx, "force down", g, check, driver.ErrSessionLost, func() error {
		if _, _, err := s.getGroup(g); err != nil {
			return err
		}
		k := s.key(downKey(g))
		for range maxRetries {
			it, err := s.mc.Get(k)
			var names []string
			switch {
			case errors.Is(err, memcache.ErrCacheMiss):
				if !down {
					return nil
				}
				err = s.mc.Add(&memcache.Item{Key: k, Value: encodeNames([]string{member}), Flags: flagMsgpack})
				if errors.Is(err, memcache.ErrNotStored) {
					continue
				}
				return err
			case err != nil:
				return err
			}
			names, _ = decodeNames(it.Value)
			has := slices.Contains(names, member)
			switch {
			case down && has, !down && !has:
				return nil
			case down:
				names = append(names, member)
			default:
				names = slices.DeleteFunc(names, func(n string) bool { return n == member })
			}
			it.Value = encodeNames(names)
			err = s.mc.CompareAndSwap(it)
			if errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) {
				continue
			}
			return err
		}
		return errContention
	})
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
