package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/musterhq/muster/servicegroup/driver"
)

// watchBuffer is how many events a watch holds for a slow reader; past it
// the watch ends and the reader watches anew (and diffs).
const watchBuffer = 256

// Watch follows group's change channel (<ns>_muster:e:<group>), which
// every script that joins, leaves, prunes, changes capabilities or
// deletes the group publishes on. Expiries nobody has pruned yet are not
// on it: the core's diff finds them. The stream ends with a reason when
// the subscription breaks (the server went away) or the group is deleted.
func (s *session) Watch(ctx context.Context, group string) (<-chan driver.Event, <-chan error, error) {
	if _, err := s.call(ctx, "watch", group, membersScript, group, ms(s.cfg.toozTTL), "\x00"); err != nil {
		return nil, nil, err
	}
	ps := s.rdb.Subscribe(ctx, s.key(kEvents, group))
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		_ = ps.Close()
		return nil, nil, driver.Errorf(backend, "watch", group, fmt.Errorf("%w: %s: %v", driver.ErrUnavailable, s.where, err))
	}
	events, errc := make(chan driver.Event, watchBuffer), make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(wctx, func() { _ = ps.Close() })
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		stop()
		_ = ps.Close()
		return nil, nil, driver.Errorf(backend, "watch", group, driver.ErrClosed)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer cancel()
		defer close(events)
		defer ps.Close()
		end := func(err error) { errc <- err }
		for {
			select {
			case <-s.done:
				end(driver.Errorf(backend, "watch", group, driver.ErrSessionLost))
				return
			default:
			}
			msg, err := ps.ReceiveMessage(wctx)
			if err != nil {
				if ctx.Err() != nil {
					end(nil)
				} else {
					end(driver.Errorf(backend, "watch", group, fmt.Errorf("%w: change stream broke: %v", driver.ErrUnavailable, err)))
				}
				return
			}
			var ev driver.Event
			kind, member, _ := strings.Cut(msg.Payload, " ")
			switch kind {
			case "j":
				ev = driver.Event{Type: driver.Joined, Group: group, Member: member}
			case "l":
				ev = driver.Event{Type: driver.Left, Group: group, Member: member}
			case "d":
				end(driver.Errorf(backend, "watch", group, driver.ErrGroupNotFound))
				return
			case "c": // capabilities or a forced-down mark changed
				ev = driver.Event{Type: driver.Updated, Group: group, Member: member}
			default:
				continue
			}
			select {
			case events <- ev:
			default:
				end(driver.Errorf(backend, "watch", group, errors.New("the reader fell behind")))
				return
			}
		}
	}()
	// Session end also ends the watch.
	go func() {
		select {
		case <-s.done:
			_ = ps.Close()
		case <-wctx.Done():
		}
	}()
	return events, errc, nil
}
