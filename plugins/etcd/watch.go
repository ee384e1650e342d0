package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/musterhq/muster/servicegroup/driver"
)

// watchBuffer is how many events a watch holds for a slow reader; past it
// the watch ends and the reader watches anew.
const watchBuffer = 256

// Watch follows group's keys with an etcd watch that starts right after
// the revision of the initial read, so no change between the two is lost.
// It reports each join and leave (expiries and revocations included),
// and an update when a member's capabilities are rewritten or its
// forced-down mark (kept outside the group's prefix) is set or cleared,
// until ctx ends, the group is deleted (Left for everyone, then
// ErrGroupNotFound), the stream breaks (no leader, compaction) or the
// session ends.
func (s *session) Watch(ctx context.Context, g string) (<-chan driver.Event, <-chan error, error) {
	rctx, cancel, err := s.begin(ctx, "watch", g)
	if err != nil {
		return nil, nil, err
	}
	gk := s.groupKey(g)
	r, err := s.cli.Get(rctx, gk, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	cancel()
	if err != nil {
		return nil, nil, s.fail("watch", g, err)
	}
	known := map[string]bool{}
	found := false
	for _, kv := range r.Kvs {
		id := string(kv.Key[len(gk):])
		switch {
		case id == "":
			found = true
		case kv.Lease != 0 && !strings.Contains(id, "/"):
			known[id] = true
		}
	}
	if !found {
		return nil, nil, driver.Errorf(backend, "watch", g, driver.ErrGroupNotFound)
	}
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wc := s.cli.Watch(wctx, gk, clientv3.WithPrefix(), clientv3.WithRev(r.Header.Revision+1))
	mc := s.cli.Watch(wctx, s.marksPrefix(g), clientv3.WithPrefix(), clientv3.WithRev(r.Header.Revision+1))
	events := make(chan driver.Event, watchBuffer)
	errc := make(chan error, 1)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		wcancel()
		return nil, nil, driver.Errorf(backend, "watch", g, driver.ErrClosed)
	}
	s.calls.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.calls.Done()
		defer close(events)
		defer wcancel()
		stop := context.AfterFunc(s.bg, wcancel)
		defer stop()
		errc <- s.follow(ctx, g, gk, known, wc, mc, events)
	}()
	return events, errc, nil
}

func (s *session) follow(ctx context.Context, g, gk string, known map[string]bool, wc, mc clientv3.WatchChan, out chan<- driver.Event) error {
	mp := s.marksPrefix(g)
	send := func(ev driver.Event) error {
		select {
		case out <- ev:
			return nil
		default:
			return driver.Errorf(backend, "watch", g, errors.New("the reader fell behind"))
		}
	}
	for {
		var resp clientv3.WatchResponse
		var ok, marks bool
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			if err := s.live("watch", g); err != nil {
				return err
			}
			return driver.Errorf(backend, "watch", g, driver.ErrClosed)
		case resp, ok = <-wc:
		case resp, ok = <-mc:
			marks = true
		}
		if ctx.Err() != nil {
			return nil
		}
		if !ok {
			if err := s.live("watch", g); err != nil {
				return err
			}
			return driver.Errorf(backend, "watch", g, fmt.Errorf("%w: %s: the watch stream ended", driver.ErrUnavailable, s.cfg.where))
		}
		if err := resp.Err(); err != nil {
			return s.fail("watch", g, fmt.Errorf("the watch stream broke: %w", err))
		}
		if marks {
			// A mark set or cleared: an update of that member (the core
			// diffs, so one on a member not joined reports nothing).
			for _, ev := range resp.Events {
				if err := send(driver.Event{Type: driver.Updated, Group: g, Member: string(ev.Kv.Key[len(mp):])}); err != nil {
					return err
				}
			}
			continue
		}
		for _, ev := range resp.Events {
			id := string(ev.Kv.Key[len(gk):])
			switch {
			case id == "" && ev.Type == mvccpb.DELETE:
				for m := range known {
					if err := send(driver.Event{Type: driver.Left, Group: g, Member: m}); err != nil {
						return err
					}
				}
				return driver.Errorf(backend, "watch", g, fmt.Errorf("group deleted: %w", driver.ErrGroupNotFound))
			case id == "" || strings.Contains(id, "/"):
			case ev.Type == mvccpb.PUT && !known[id] && ev.Kv.Lease != 0:
				known[id] = true
				if err := send(driver.Event{Type: driver.Joined, Group: g, Member: id}); err != nil {
					return err
				}
			case ev.Type == mvccpb.PUT && known[id]:
				// Capabilities rewritten (SetCapabilities).
				if err := send(driver.Event{Type: driver.Updated, Group: g, Member: id}); err != nil {
					return err
				}
			case ev.Type == mvccpb.DELETE && known[id]:
				delete(known, id)
				if err := send(driver.Event{Type: driver.Left, Group: g, Member: id}); err != nil {
					return err
				}
			}
		}
	}
}
