package zookeeper

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/musterhq/muster/servicegroup/driver"
)

// watchBuffer is how many events a watch holds for a slow reader; past it
// the watch ends and the reader watches anew.
const watchBuffer = 256

// Watch follows group's children with ZooKeeper child watches and reports
// each join and leave (expiries included) until ctx ends, the group is
// deleted (Left for everyone, then ErrGroupNotFound) or the session ends.
// A data watch on the group node, which SetCapabilities and SetForcedDown
// touch, reports Updated (with no member: the core re-reads the group).
func (s *session) Watch(ctx context.Context, g string) (<-chan driver.Event, <-chan error, error) {
	if err := s.start("watch", "group", g); err != nil {
		return nil, nil, err
	}
	p := s.groupPath(g)
	var kids []string
	var ch, data <-chan zk.Event
	err := s.do(ctx, func() error {
		var err error
		if _, _, data, err = s.conn.GetW(p); err != nil {
			return err
		}
		kids, _, ch, err = s.conn.ChildrenW(p)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil, driver.Errorf(backend, "watch", g, driver.ErrGroupNotFound)
	}
	if err != nil {
		return nil, nil, s.fail("watch", g, err)
	}
	events := make(chan driver.Event, watchBuffer)
	errc := make(chan error, 1)
	known := map[string]bool{}
	for _, k := range kids {
		known[k] = true
	}
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		defer close(events)
		errc <- s.follow(ctx, g, p, known, ch, data, events)
	}()
	return events, errc, nil
}

func (s *session) follow(ctx context.Context, g, p string, known map[string]bool, ch, data <-chan zk.Event, out chan<- driver.Event) error {
	send := func(ev driver.Event) error {
		select {
		case out <- ev:
			return nil
		default:
			return driver.Errorf(backend, "watch", g, errors.New("the reader fell behind"))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return driver.Errorf(backend, "watch", g, fmt.Errorf("%w: the session ended", driver.ErrSessionLost))
		case ev := <-ch:
			if ev.Type == zk.EventNotWatching {
				return s.fail("watch", g, fmt.Errorf("the watch stopped: %v", ev.Err))
			}
		case ev := <-data:
			if ev.Type == zk.EventNotWatching {
				return s.fail("watch", g, fmt.Errorf("the watch stopped: %v", ev.Err))
			}
			if ev.Type == zk.EventNodeDeleted {
				data = nil // the child watch reports the deletion
				continue
			}
			err := s.do(ctx, func() error {
				var err error
				_, _, data, err = s.conn.GetW(p)
				return err
			})
			if ctx.Err() != nil {
				return nil
			}
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				return s.fail("watch", g, err)
			}
			if err := send(driver.Event{Type: driver.Updated, Group: g}); err != nil {
				return err
			}
			continue
		}
		var kids []string
		err := s.do(ctx, func() error {
			var err error
			kids, _, ch, err = s.conn.ChildrenW(p)
			return err
		})
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, zk.ErrNoNode) {
			for m := range known {
				if err := send(driver.Event{Type: driver.Left, Group: g, Member: m}); err != nil {
					return err
				}
			}
			return driver.Errorf(backend, "watch", g, fmt.Errorf("group deleted: %w", driver.ErrGroupNotFound))
		}
		if err != nil {
			return s.fail("watch", g, err)
		}
		now := make(map[string]bool, len(kids))
		for _, k := range kids {
			now[k] = true
			if !known[k] {
				if err := send(driver.Event{Type: driver.Joined, Group: g, Member: k}); err != nil {
					return err
				}
			}
		}
		for k := range known {
			if !now[k] {
				if err := send(driver.Event{Type: driver.Left, Group: g, Member: k}); err != nil {
					return err
				}
			}
		}
		known = now
	}
}
