package servicegroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/driver"
)

// EventType says what a watch saw.
type EventType int

// Event types.
const (
	// MemberJoined: Member is now live in Group.
	MemberJoined EventType = iota + 1
	// MemberLeft: Member left Group, or its session expired.
	MemberLeft
	// LeaderChanged: Member now leads Group ("" when nobody does).
	LeaderChanged
	// MemberUpdated: a live Member's capabilities changed, or its
	// forced-down mark was set or cleared; Capabilities and ForcedDown are
	// its state now. A heartbeat (a new UpdatedAt) is not an update.
	MemberUpdated
)

// syncMark is the watch's own note to a View following it: the group was
// read (or failed to be) at Event.at. Never sent on a public Watch.
const syncMark EventType = -1

func (t EventType) String() string {
	switch t {
	case MemberJoined:
		return "joined"
	case MemberLeft:
		return "left"
	case LeaderChanged:
		return "leader"
	case MemberUpdated:
		return "updated"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change in a watched group.
type Event struct {
	Type   EventType
	Group  string
	Member string
	// Capabilities of a joined or updated member.
	Capabilities Capabilities
	// ForcedDown is whether a joined or updated member is forced down
	// (then it is live but not up).
	ForcedDown bool

	// For syncMark: when the read began (monotonic), and its error.
	at  time.Duration
	err error
}

// Watch is a stream of a group's changes.
type Watch struct {
	events  chan Event
	initial []Member
	kick    chan struct{} // asks the poll to read the group now
	mu      sync.Mutex
	err     error
}

// Initial is the group's membership the stream started from: its first
// events are a MemberJoined for each of these, and every later event is a
// change from this state. A follower that seeds itself from Initial (not
// from a read of its own, which may see a member the stream never will)
// stays equal to the group.
func (w *Watch) Initial() []Member { return slices.Clone(w.initial) }

// Events delivers the changes in order. It starts with a MemberJoined for
// every member live when the watch began (and a LeaderChanged if the group
// has a leader), so a watcher never needs a separate read. It is closed when
// the watch ends; then Err says why.
func (w *Watch) Events() <-chan Event { return w.events }

// Err is why the watch ended: nil if its context was cancelled, an error
// matching ErrGroupNotFound if the group was deleted (after a MemberLeft for
// every member), ErrClosed if the ServiceGroup was closed.
func (w *Watch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Watch follows group's membership and leadership until ctx ends. Each
// watch has its own goroutine and buffer: a slow consumer delays only its
// own events, never other watches or the heartbeat. ErrGroupNotFound if the
// group does not exist.
//
// Besides joins and leaves it reports a live member's updates
// (MemberUpdated): new capabilities, a forced-down mark set or cleared.
// Backends with a native change stream deliver them as they happen; the
// others are seen at the next poll (WatchInterval).
func (s *ServiceGroup) Watch(ctx context.Context, group string) (*Watch, error) {
	return s.watch(ctx, group, false)
}

// watch is Watch; with marks, the stream also carries a syncMark after
// every read of the group (for a View).
func (s *ServiceGroup) watch(ctx context.Context, group string, marks bool) (*Watch, error) {
	if err := validGroup(group); err != nil {
		return nil, err
	}
	// Read once now so a missing group is an error, not an empty stream.
	began := monoNow()
	raw, err := s.rawMembers(ctx, group)
	if err != nil {
		return nil, err
	}
	sortRaw(raw)
	first := make([]Member, 0, len(raw))
	for _, m := range raw {
		first = append(first, Member{ID: m.ID, Capabilities: s.watchCaps(group, m), UpdatedAt: m.UpdatedAt, ForcedDown: m.ForcedDown})
	}
	w := &Watch{events: make(chan Event, 64), initial: first, kick: make(chan struct{}, 1)}
	// Add under mu, which Close takes to set closed before it Waits: a
	// watch never starts once Close is waiting.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("servicegroup: watch %q: %w", group, driver.ErrClosed)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer close(w.events)
		err := s.poll(ctx, group, raw, began, marks, w)
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}()
	return w, nil
}

// rawStates is rawMembers for a diff or GetAll, which need no UpdatedAt: where the
// backend lists members cheaper without it (driver.StateLister), so.
func (s *ServiceGroup) rawStates(ctx context.Context, group string) ([]driver.Member, error) {
	var raw []driver.Member
	err := s.do(ctx, func(d driver.Driver) (err error) {
		if l, ok := d.(driver.StateLister); ok {
			raw, err = l.MemberStates(ctx, group)
		} else {
			raw, err = d.Members(ctx, group)
		}
		return err
	})
	return raw, err
}

// rawMembers lists group's live members as the backend stores them.
func (s *ServiceGroup) rawMembers(ctx context.Context, group string) ([]driver.Member, error) {
	var raw []driver.Member
	err := s.do(ctx, func(d driver.Driver) (err error) {
		raw, err = d.Members(ctx, group)
		return err
	})
	return raw, err
}

func sortRaw(ms []driver.Member) {
	slices.SortFunc(ms, func(a, b driver.Member) int { return strings.Compare(a.ID, b.ID) })
}

// watchCaps decodes m's capabilities; an unreadable record reads as none
// (one member's bad record must not hide the others).
func (s *ServiceGroup) watchCaps(group string, m driver.Member) Capabilities {
	caps, err := driver.DecodeCapabilities(m.Capabilities)
	if err != nil {
		s.log.Sugar().Warnw("unreadable capabilities", "group", group, "member", m.ID, "error", err)
		return Capabilities{}
	}
	return caps
}

// seen is what a watch last saw of a member: what an update changes.
type seen struct {
	caps []byte
	down bool
}

// poll diffs the group's state every WatchInterval, and at once whenever a
// backend's native watch says something changed. It sees a member that
// joins and leaves between two diffs as nothing, and several updates
// between two diffs as one, which is the state that mattered.
func (s *ServiceGroup) poll(ctx context.Context, group string, first []driver.Member, began time.Duration, marks bool, w *Watch) error {
	known := map[string]seen{}
	leader := ""
	send := func(ev Event) bool {
		select {
		case w.events <- ev:
			return true
		case <-ctx.Done():
			return false
		case <-s.stop:
			return false
		}
	}
	mark := func(at time.Duration, err error) bool {
		return !marks || send(Event{Type: syncMark, Group: group, at: at, err: err})
	}
	diff := func(ms []driver.Member) bool {
		sortRaw(ms)
		now := make(map[string]seen, len(ms))
		for _, m := range ms {
			cur := seen{caps: m.Capabilities, down: m.ForcedDown}
			now[m.ID] = cur
			old, was := known[m.ID]
			var typ EventType
			switch {
			case !was:
				typ = MemberJoined
			case old.down != cur.down:
				typ = MemberUpdated
			case !bytes.Equal(old.caps, cur.caps):
				// Bytes differ; the values may not (another encoder).
				a, errA := driver.DecodeCapabilities(old.caps)
				b, errB := driver.DecodeCapabilities(cur.caps)
				if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
					typ = MemberUpdated
				}
			}
			if typ != 0 && !send(Event{Type: typ, Group: group, Member: m.ID, Capabilities: s.watchCaps(group, m), ForcedDown: m.ForcedDown}) {
				return false
			}
		}
		var gone []string
		for id := range known {
			if _, ok := now[id]; !ok {
				gone = append(gone, id)
			}
		}
		slices.Sort(gone)
		for _, id := range gone {
			if !send(Event{Type: MemberLeft, Group: group, Member: id}) {
				return false
			}
		}
		known = now
		return true
	}
	checkLeader := func() bool {
		l, err := s.Leader(ctx, group)
		if err != nil && !errors.Is(err, driver.ErrNoLeader) {
			return true // transient; next poll
		}
		if l != leader {
			leader = l
			return send(Event{Type: LeaderChanged, Group: group, Member: l})
		}
		return true
	}
	if !diff(first) || !mark(began, nil) || !checkLeader() {
		return s.watchEnd(ctx, group)
	}
	t := time.NewTicker(s.cfg.WatchInterval)
	defer t.Stop()
	native := nativeWatch{group: group}
	defer native.stop()
	for {
		// A stream just (re)started may have missed what changed since the
		// last diff: diff at once. Otherwise wait for a reason to look.
		if !native.follow(ctx, s) {
			select {
			case <-ctx.Done():
				return nil
			case <-s.stop:
				return fmt.Errorf("servicegroup: watch %q: %w", group, driver.ErrClosed)
			case <-t.C:
			case <-w.kick:
			case <-native.wake:
				native.drain()
			}
		}
		began := monoNow()
		ms, err := s.rawStates(ctx, group)
		switch {
		case errors.Is(err, driver.ErrGroupNotFound):
			if !diff(nil) {
				return s.watchEnd(ctx, group)
			}
			return fmt.Errorf("servicegroup: watch %q: group deleted: %w", group, err)
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			s.log.Debug("watch poll failed; retrying", zap.String("group", group), zap.Error(err))
			if !mark(began, err) {
				return s.watchEnd(ctx, group)
			}
			continue
		}
		if !diff(ms) || !mark(began, nil) || !checkLeader() {
			return s.watchEnd(ctx, group)
		}
	}
}

// nativeWatch follows a backend's own change stream (driver.Watcher) where
// there is one. Its events (joined, left, updated) only say "look now": the
// watch still diffs the member list, so what it reports is the same as by
// polling, only sooner, and a broken stream loses nothing. Leadership is
// still polled.
type nativeWatch struct {
	group  string
	ep     *epoch // the session watched (nil: none yet, or re-watch)
	wake   <-chan driver.Event
	cancel context.CancelFunc
}

// follow (re)starts the stream when the session changed or the stream
// ended, and says whether it started one.
func (n *nativeWatch) follow(ctx context.Context, s *ServiceGroup) bool {
	// Sessions are compared as epochs: a Driver need not be comparable.
	e, err := s.current()
	if err != nil || e == n.ep {
		return false
	}
	n.stop()
	n.ep = e
	w, ok := e.drv.(driver.Watcher)
	if !ok {
		return false
	}
	wctx, cancel := context.WithCancel(ctx)
	events, _, err := w.Watch(wctx, n.group)
	if err != nil {
		cancel()
		return false // the member list says why (e.g. the group is gone)
	}
	n.wake, n.cancel = events, cancel
	return true
}

// drain takes every queued event: one diff answers them all.
func (n *nativeWatch) drain() {
	for {
		select {
		case _, ok := <-n.wake:
			if !ok {
				n.stop()
				n.ep = nil // watch anew on the next round
				return
			}
		default:
			return
		}
	}
}

func (n *nativeWatch) stop() {
	if n.cancel != nil {
		n.cancel()
	}
	n.wake, n.cancel = nil, nil
}

func (s *ServiceGroup) watchEnd(ctx context.Context, group string) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("servicegroup: watch %q: %w", group, driver.ErrClosed)
}
