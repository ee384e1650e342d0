package servicegroup

import (
	"context"
	"errors"
	"sort"

	"github.com/musterhq/muster/servicegroup/driver"
)

// KnownMember is a member of a group the backend holds a record of: a live
// member, or a dead one whose record the backend has not cleaned up yet.
type KnownMember struct {
	Member
	// Live is false for a member whose session has ended (its UpdatedAt is
	// then its last renewal the backend still knows of, or zero when it
	// knows none), and for a forced-down mark on a name with no record.
	Live bool
}

// MemberState is what a listed member may be trusted with.
type MemberState string

// Member states.
const (
	// StateUp: live and not forced down; it may be given work.
	StateUp MemberState = "up"
	// StateForcedDown: live, but an operator marked it down.
	StateForcedDown MemberState = "forced-down"
	// StateDown: its session has ended (forced down or not).
	StateDown MemberState = "down"
)

// Up reports whether the member may be given work: live and not forced
// down.
func (m KnownMember) Up() bool { return m.Live && !m.ForcedDown }

// State says whether m is up, forced down or down.
func (m KnownMember) State() MemberState {
	switch {
	case !m.Live:
		return StateDown
	case m.ForcedDown:
		return StateForcedDown
	}
	return StateUp
}

// KnownMembers lists every member of group the backend still holds a
// record of, sorted by id: the live members, as Members lists them, and
// the dead ones whose records it keeps until it cleans them up (a member
// that left has none), and forced-down marks on names with no record. So
// an operator can tell a dead host from a name that never joined.
//
// dead is false when the backend keeps no record of dead members (etcd
// and ZooKeeper, whose records vanish with their sessions, and the memory
// backend): the listing is then the live members alone, and a name
// missing from it may be a dead host or a typo. ErrGroupNotFound.
func (s *ServiceGroup) KnownMembers(ctx context.Context, group string) (ms []KnownMember, dead bool, err error) {
	if err := validGroup(group); err != nil {
		return nil, false, err
	}
	var raw []driver.KnownMember
	err = s.do(ctx, func(d driver.Driver) error {
		raw, dead = nil, false
		if l, ok := d.(driver.KnownMemberLister); ok {
			known, err := l.KnownMembers(ctx, group)
			if !errors.Is(err, driver.ErrUnimplemented) {
				raw, dead = known, err == nil
				return err
			}
		}
		live, err := d.Members(ctx, group)
		for _, m := range live {
			raw = append(raw, driver.KnownMember{Member: m, Live: true})
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}
	ms = make([]KnownMember, 0, len(raw))
	for _, m := range raw {
		ms = append(ms, KnownMember{Member: s.decodeMember(group, m.Member), Live: m.Live})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	return ms, dead, nil
}
