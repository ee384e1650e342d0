package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/musterhq/muster/servicegroup/driver"
)

// locksGroup is the child of the namespace that holds tooz's (and
// muster's) locks: it is not a group.
const locksGroup = "locks"

// checkName adds ZooKeeper's own limits to the central ones.
func checkName(kind, name string) error {
	if kind == "group" && name == locksGroup {
		return fmt.Errorf("%w: group %q: reserved on ZooKeeper (tooz keeps its locks there)", driver.ErrInvalidName, name)
	}
	for _, r := range name {
		if r >= 0x7f && r <= 0x9f || r >= 0xd800 && r <= 0xf8ff || r >= 0xfff0 && r <= 0xffff {
			return fmt.Errorf("%w: %s %q: ZooKeeper does not allow the character %U", driver.ErrInvalidName, kind, name, r)
		}
	}
	return nil
}

func (s *session) groupPath(g string) string { return s.ns + "/" + g }
func (s *session) marksPath(g string) string { return s.internal + "/marks/" + g }

func (s *session) start(op, kind, name string) error {
	if err := s.live(op, name); err != nil {
		return err
	}
	if kind != "" {
		if err := checkName(kind, name); err != nil {
			return driver.Errorf(backend, op, name, err)
		}
	}
	return nil
}

func (s *session) CreateGroup(ctx context.Context, g string) error {
	if err := s.start("create group", "group", g); err != nil {
		return err
	}
	err := s.do(ctx, func() error {
		_, err := s.conn.Create(s.groupPath(g), nil, 0, s.acl)
		return err
	})
	if errors.Is(err, zk.ErrNodeExists) {
		return driver.Errorf(backend, "create group", g, driver.ErrGroupExists)
	}
	return s.fail("create group", g, err)
}

func (s *session) DeleteGroup(ctx context.Context, g string) error {
	if err := s.start("delete group", "group", g); err != nil {
		return err
	}
	err := s.do(ctx, func() error { return s.conn.Delete(s.groupPath(g), -1) })
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return driver.Errorf(backend, "delete group", g, driver.ErrGroupNotFound)
	case errors.Is(err, zk.ErrNotEmpty):
		return driver.Errorf(backend, "delete group", g, driver.ErrGroupNotEmpty)
	case err != nil:
		return s.fail("delete group", g, err)
	}
	// Forced-down marks go with their group.
	_ = s.do(ctx, func() error {
		kids, _, err := s.conn.Children(s.marksPath(g))
		if err != nil {
			return err
		}
		for _, k := range kids {
			_ = s.conn.Delete(s.marksPath(g)+"/"+k, -1)
		}
		return s.conn.Delete(s.marksPath(g), -1)
	})
	return nil
}

func (s *session) Groups(ctx context.Context) ([]string, error) {
	if err := s.start("list groups", "", ""); err != nil {
		return nil, err
	}
	var kids []string
	err := s.do(ctx, func() error {
		var err error
		kids, _, err = s.conn.Children(s.ns)
		return err
	})
	if err != nil {
		return nil, s.fail("list groups", "", err)
	}
	kids = slices.DeleteFunc(kids, func(k string) bool { return k == locksGroup })
	slices.Sort(kids)
	return kids, nil
}

func (s *session) Join(ctx context.Context, g string, caps []byte) error {
	if err := s.start("join", "group", g); err != nil {
		return err
	}
	if err := checkName("member", s.member); err != nil {
		return driver.Errorf(backend, "join", g, err)
	}
	err := s.createOwned(ctx, s.groupPath(g)+"/"+s.member, storeCaps(caps))
	switch {
	case errors.Is(err, zk.ErrNodeExists):
		return driver.Errorf(backend, "join", g, fmt.Errorf("%w: %q", driver.ErrMemberExists, s.member))
	case errors.Is(err, zk.ErrNoNode):
		return driver.Errorf(backend, "join", g, driver.ErrGroupNotFound)
	}
	return s.fail("join", g, err)
}

// mine returns the stat of this session's member node in g.
func (s *session) mine(ctx context.Context, op, g string) (*zk.Stat, error) {
	var st *zk.Stat
	var ok bool
	err := s.do(ctx, func() error {
		var err error
		ok, st, err = s.conn.Exists(s.groupPath(g) + "/" + s.member)
		if err == nil && !ok {
			ok, _, err = s.conn.Exists(s.groupPath(g))
			if err == nil && !ok {
				return zk.ErrNoNode
			}
			ok = false
		}
		return err
	})
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil, driver.Errorf(backend, op, g, driver.ErrGroupNotFound)
	case err != nil:
		return nil, s.fail(op, g, err)
	case st == nil || !ok || st.EphemeralOwner != s.zkID:
		return nil, driver.Errorf(backend, op, g, driver.ErrNotMember)
	}
	return st, nil
}

func (s *session) Leave(ctx context.Context, g string) error {
	if err := s.start("leave", "group", g); err != nil {
		return err
	}
	st, err := s.mine(ctx, "leave", g)
	if err != nil {
		return err
	}
	p := s.groupPath(g) + "/" + s.member
	err = s.do(ctx, func() error { return s.conn.Delete(p, st.Version) })
	if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) {
		return driver.Errorf(backend, "leave", g, driver.ErrNotMember)
	}
	if err == nil {
		s.disown(p)
	}
	return s.fail("leave", g, err)
}

func (s *session) SetCapabilities(ctx context.Context, g string, caps []byte) error {
	if err := s.start("set capabilities", "group", g); err != nil {
		return err
	}
	st, err := s.mine(ctx, "set capabilities", g)
	if err != nil {
		return err
	}
	err = s.do(ctx, func() error {
		// Touching the group node in the same transaction wakes every
		// Watch of the group (a data watch on it): one watch per group,
		// not one per member.
		res, err := s.conn.Multi(
			&zk.SetDataRequest{Path: s.groupPath(g) + "/" + s.member, Data: storeCaps(caps), Version: st.Version},
			&zk.SetDataRequest{Path: s.groupPath(g), Version: -1},
		)
		if err != nil && len(res) == 2 {
			for _, r := range res {
				for _, known := range []error{zk.ErrNoNode, zk.ErrBadVersion, zk.ErrNoAuth} {
					if errors.Is(r.Error, known) {
						return known
					}
				}
			}
		}
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return driver.Errorf(backend, "set capabilities", g, driver.ErrNotMember)
	}
	if errors.Is(err, zk.ErrBadVersion) {
		// Written since by this session (a concurrent update): retry once.
		return s.SetCapabilities(ctx, g, caps)
	}
	return s.fail("set capabilities", g, err)
}

func (s *session) SetForcedDown(ctx context.Context, g, member string, down bool) error {
	if err := s.start("force down", "group", g); err != nil {
		return err
	}
	err := s.do(ctx, func() error {
		ok, _, err := s.conn.Exists(s.groupPath(g))
		if err != nil {
			return err
		}
		if !ok {
			return zk.ErrNoNode
		}
		mark := s.marksPath(g) + "/" + member
		if !down {
			if err := s.conn.Delete(mark, -1); err != nil {
				if errors.Is(err, zk.ErrNoNode) {
					return nil // nothing changed: wake nobody
				}
				return err
			}
			return s.touch(g)
		}
		for range 3 {
			_, err = s.conn.Create(mark, nil, 0, s.acl)
			if errors.Is(err, zk.ErrNoNode) {
				for _, p := range []string{s.internal + "/marks", s.marksPath(g)} {
					if _, err := s.conn.Create(p, nil, 0, s.acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
						return err
					}
				}
				continue
			}
			if errors.Is(err, zk.ErrNodeExists) {
				return nil
			}
			if err != nil {
				return err
			}
			return s.touch(g)
		}
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return driver.Errorf(backend, "force down", g, driver.ErrGroupNotFound)
	}
	return s.fail("force down", g, err)
}

// touch rewrites g's node (its data stays empty) so every Watch of g,
// which holds a data watch on it, wakes up: marks live elsewhere.
func (s *session) touch(g string) error {
	_, err := s.conn.Set(s.groupPath(g), nil, -1)
	return err
}

// Members lists g's live members: its ephemeral children (a persistent
// child, such as tooz's "leader" lock directory, is not a member). A
// member's UpdatedAt is its session record's mtime, by ZooKeeper's clock;
// for a member written by tooz (no session record), its node's mtime.
func (s *session) Members(ctx context.Context, g string) ([]driver.Member, error) {
	return s.list(ctx, g, true)
}

// MemberStates is Members without UpdatedAt (driver.StateLister): it reads
// no session record, so a watch's diff costs the children and one read per
// member, half of Members' requests.
func (s *session) MemberStates(ctx context.Context, g string) ([]driver.Member, error) {
	return s.list(ctx, g, false)
}

var _ driver.StateLister = (*session)(nil)

func (s *session) list(ctx context.Context, g string, times bool) ([]driver.Member, error) {
	if err := s.start("members", "group", g); err != nil {
		return nil, err
	}
	var out []driver.Member
	err := s.do(ctx, func() error {
		var err error
		out, err = s.members(g, times)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil, driver.Errorf(backend, "members", g, driver.ErrGroupNotFound)
	}
	if err != nil {
		return nil, s.fail("members", g, err)
	}
	return out, nil
}

// Member reads one member's record (driver.MemberGetter): its node and its
// forced-down mark in one pipelined round trip, then its session's record
// for the last heartbeat; IsUp costs that, not a listing of the group.
func (s *session) Member(ctx context.Context, g, member string) (driver.Member, error) {
	return s.oneMember(ctx, g, member, true)
}

// MemberState is Member without UpdatedAt (driver.StateLister): the node
// and its mark in one pipelined round trip, no session record.
func (s *session) MemberState(ctx context.Context, g, member string) (driver.Member, error) {
	return s.oneMember(ctx, g, member, false)
}

func (s *session) oneMember(ctx context.Context, g, member string, times bool) (driver.Member, error) {
	if err := s.start("member", "group", g); err != nil {
		return driver.Member{}, err
	}
	var m driver.Member
	err := s.do(ctx, func() error {
		var err error
		m, err = s.readMember(g, member, times)
		return err
	})
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return driver.Member{}, driver.Errorf(backend, "member", g, driver.ErrGroupNotFound)
	case errors.Is(err, driver.ErrNotMember):
		return driver.Member{}, driver.Errorf(backend, "member", g, err)
	case err != nil:
		return driver.Member{}, s.fail("member", g, err)
	}
	return m, nil
}

// readMember is Member's reads; zk.ErrNoNode means the group does not exist.
func (s *session) readMember(g, member string, times bool) (driver.Member, error) {
	var (
		data     []byte
		st       *zk.Stat
		err      error
		marked   bool
		markErr  error
		wg       sync.WaitGroup
		notFound = fmt.Errorf("%w: %q", driver.ErrNotMember, member)
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		marked, _, markErr = s.conn.Exists(s.marksPath(g) + "/" + member)
	}()
	data, st, err = s.conn.Get(s.groupPath(g) + "/" + member)
	wg.Wait()
	if errors.Is(err, zk.ErrNoNode) {
		// Not a member, or no group at all: the group node says which.
		ok, _, gerr := s.conn.Exists(s.groupPath(g))
		switch {
		case gerr != nil:
			return driver.Member{}, gerr
		case !ok:
			return driver.Member{}, zk.ErrNoNode
		}
		return driver.Member{}, notFound
	}
	if err != nil {
		return driver.Member{}, err
	}
	if markErr != nil {
		return driver.Member{}, markErr
	}
	if st.EphemeralOwner == 0 {
		return driver.Member{}, notFound
	}
	m := driver.Member{ID: member, Capabilities: loadCaps(data), ForcedDown: marked}
	if !times {
		return m, nil
	}
	m.UpdatedAt = time.UnixMilli(st.Mtime)
	if _, sst, err := s.conn.Get(fmt.Sprintf("%s/sessions/%016x", s.internal, uint64(st.EphemeralOwner))); err == nil {
		m.UpdatedAt = time.UnixMilli(sst.Mtime)
	}
	return m, nil
}

// fanout bounds the concurrent requests of one Members call: the client
// pipelines them on its one connection.
const fanout = 64

func (s *session) members(g string, times bool) ([]driver.Member, error) {
	kids, _, err := s.conn.Children(s.groupPath(g))
	if err != nil {
		return nil, err
	}
	if len(kids) == 0 {
		return []driver.Member{}, nil
	}
	type node struct {
		data []byte
		st   *zk.Stat
		err  error
	}
	nodes := make([]node, len(kids))
	var marks []string
	var marksErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, fanout)
	wg.Add(1)
	go func() {
		defer wg.Done()
		marks, _, marksErr = s.conn.Children(s.marksPath(g))
	}()
	for i, k := range kids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			nodes[i].data, nodes[i].st, nodes[i].err = s.conn.Get(s.groupPath(g) + "/" + k)
		}()
	}
	wg.Wait()
	if marksErr != nil && !errors.Is(marksErr, zk.ErrNoNode) {
		return nil, marksErr
	}
	// Session records, one per owner.
	beats := map[int64]time.Time{}
	for _, n := range nodes {
		if n.err == nil && n.st.EphemeralOwner != 0 {
			beats[n.st.EphemeralOwner] = time.Time{}
		}
	}
	owners := make([]int64, 0, len(beats))
	for owner := range beats {
		if times {
			owners = append(owners, owner)
		}
	}
	var bmu sync.Mutex
	for _, owner := range owners {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, st, err := s.conn.Get(fmt.Sprintf("%s/sessions/%016x", s.internal, uint64(owner)))
			if err == nil {
				bmu.Lock()
				beats[owner] = time.UnixMilli(st.Mtime)
				bmu.Unlock()
			}
		}()
	}
	wg.Wait()
	out := make([]driver.Member, 0, len(kids))
	for i, n := range nodes {
		switch {
		case errors.Is(n.err, zk.ErrNoNode):
			continue // left meanwhile
		case n.err != nil:
			return nil, n.err
		case n.st.EphemeralOwner == 0:
			continue // not a member
		}
		at := beats[n.st.EphemeralOwner]
		if at.IsZero() {
			at = time.UnixMilli(n.st.Mtime)
		}
		out = append(out, driver.Member{ID: kids[i], Capabilities: loadCaps(n.data), UpdatedAt: at,
			ForcedDown: slices.Contains(marks, kids[i])})
	}
	return out, nil
}

// emptyMap is msgpack's {}: what "no capabilities" is stored as, so tooz
// reads a map.
var emptyMap = []byte{0x80}

func storeCaps(caps []byte) []byte {
	if len(caps) == 0 {
		return emptyMap
	}
	return caps
}

// loadCaps reads a member's data: no capabilities (nil) for an empty map,
// and for what tooz stores when it was given none (msgpack nil, b"" or "").
func loadCaps(b []byte) []byte {
	switch string(b) {
	case "", "\x80", "\xc0", "\xc4\x00", "\xa0":
		return nil
	}
	return b
}
