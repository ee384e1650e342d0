package servicegroup

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
)

func (t EventType) String() string {
	switch t {
	case MemberJoined:
		return "joined"
	case MemberLeft:
		return "left"
	case LeaderChanged:
		return "leader"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change in a watched group.
type Event struct {
	Type   EventType
	Group  string
	Member string
	// Capabilities of a joined member.
	Capabilities Capabilities
}

// Watch is a stream of a group's changes.
type Watch struct {
	events  chan Event
	initial []Member
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
func (s *ServiceGroup) Watch(ctx context.Context, group string) (*Watch, error) {
	if err := validGroup(group); err != nil {
		return nil, err
	}
	// Read once now so a missing group is an error, not an empty stream.
	first, err := s.Members(ctx, group)
	if err != nil {
		return nil, err
	}
	w := &Watch{events: make(chan Event, 64), initial: first}
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
		err := s.poll(ctx, group, first, w.events)
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}()
	return w, nil
}

// poll diffs the group's state every WatchInterval, and at once whenever a
// backend's native watch says something changed. It sees a member that
// joins and leaves between two diffs as nothing, which is the state that
// mattered.
func (s *ServiceGroup) poll(ctx context.Context, group string, first []Member, out chan<- Event) error {
	known := map[string]bool{}
	leader := ""
	send := func(ev Event) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		case <-s.stop:
			return false
		}
	}
	diff := func(ms []Member) bool {
		now := make(map[string]bool, len(ms))
		for _, m := range ms {
			now[m.ID] = true
			if !known[m.ID] && !send(Event{Type: MemberJoined, Group: group, Member: m.ID, Capabilities: m.Capabilities}) {
				return false
			}
		}
		for id := range known {
			if !now[id] && !send(Event{Type: MemberLeft, Group: group, Member: id}) {
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
	if !diff(first) || !checkLeader() {
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
			case <-native.wake:
				native.drain()
			}
		}
		ms, err := s.Members(ctx, group)
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
			continue
		}
		if !diff(ms) || !checkLeader() {
			return s.watchEnd(ctx, group)
		}
	}
}

// nativeWatch follows a backend's own change stream (driver.Watcher) where
// there is one. Its events only say "look now": the watch still diffs the
// member list, so what it reports is the same as by polling, only sooner,
// and a broken stream loses nothing. Leadership is still polled.
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
