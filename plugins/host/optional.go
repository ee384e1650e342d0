package host

import (
	"context"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

// driver returns s as a driver.Driver that also implements exactly the
// optional interfaces the plugin's driver implements, so the core's type
// assertions see what the backend can do.
func (s *session) driver() driver.Driver {
	w, l := s.features.GetWatcher(), s.features.GetLockWaiter()
	switch {
	case w && l:
		return &struct {
			*session
			watcher
			lockWaiter
		}{s, watcher{s}, lockWaiter{s}}
	case w:
		return &struct {
			*session
			watcher
		}{s, watcher{s}}
	case l:
		return &struct {
			*session
			lockWaiter
		}{s, lockWaiter{s}}
	default:
		return s
	}
}

// PID returns the process id of the plugin serving d, if d is a plugin
// session: for status output and tests.
func PID(d driver.Driver) (int, bool) {
	p, ok := d.(interface{ pid() int })
	if !ok {
		return 0, false
	}
	return p.pid(), true
}

type watcher struct{ s *session }

// Watch streams the plugin driver's native watch of group.
func (w watcher) Watch(ctx context.Context, group string) (<-chan driver.Event, <-chan error, error) {
	s := w.s
	if err := s.ended(); err != nil {
		return nil, nil, s.opErr("watch", group, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	stream, err := s.rpc.Watch(ctx, &proto.GroupRequest{Group: group})
	if err == nil {
		_, err = stream.Recv() // the start marker, or the driver's error
	}
	if err != nil {
		cancel()
		return nil, nil, s.result(ctx, "watch", group, err)
	}
	events := make(chan driver.Event)
	errc := make(chan error, 1)
	go func() {
		defer cancel()
		defer close(events)
		for {
			msg, err := stream.Recv()
			if err != nil {
				if ctx.Err() != nil {
					errc <- nil
				} else {
					errc <- s.result(ctx, "watch", group, err)
				}
				return
			}
			ev, ok := msg.Driver()
			if !ok {
				continue
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				errc <- nil
				return
			}
		}
	}()
	return events, errc, nil
}

type lockWaiter struct{ s *session }

// Lock blocks in the plugin driver until it holds name or ctx ends.
func (l lockWaiter) Lock(ctx context.Context, name string) (driver.Token, error) {
	s := l.s
	if err := s.ended(); err != nil {
		return 0, s.opErr("lock", name, err)
	}
	resp, err := s.rpc.Lock(ctx, &proto.LockRequest{Name: name})
	if err != nil {
		return 0, s.result(ctx, "lock", name, err)
	}
	if resp.GetToken() == 0 {
		return 0, s.opErr("lock", name, errNoResult)
	}
	return driver.Token(resp.GetToken()), nil
}
