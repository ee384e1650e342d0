// Command watching is the file plugin with the optional interfaces the
// file backend lacks, done by polling, so the host's Watch and Lock paths
// run against a real plugin.
package main

import (
	"context"
	"errors"
	"time"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/plugins/serve"
	"github.com/musterhq/muster/servicegroup/driver"
)

const poll = 20 * time.Millisecond

type watching struct{ driver.Driver }

func (w watching) Watch(ctx context.Context, group string) (<-chan driver.Event, <-chan error, error) {
	ids := func() (map[string]bool, error) {
		ms, err := w.Members(ctx, group)
		if err != nil {
			return nil, err
		}
		set := make(map[string]bool, len(ms))
		for _, m := range ms {
			set[m.ID] = true
		}
		return set, nil
	}
	last, err := ids()
	if err != nil {
		return nil, nil, err
	}
	events := make(chan driver.Event)
	errc := make(chan error, 1)
	go func() {
		defer close(events)
		send := func(ev driver.Event) bool {
			select {
			case events <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			select {
			case <-ctx.Done():
				errc <- nil
				return
			case <-time.After(poll):
			}
			now, err := ids()
			if err != nil {
				if ctx.Err() != nil {
					err = nil
				}
				errc <- err
				return
			}
			for id := range now {
				if !last[id] && !send(driver.Event{Type: driver.Joined, Group: group, Member: id}) {
					errc <- nil
					return
				}
			}
			for id := range last {
				if !now[id] && !send(driver.Event{Type: driver.Left, Group: group, Member: id}) {
					errc <- nil
					return
				}
			}
			last = now
		}
	}()
	return events, errc, nil
}

func (w watching) Lock(ctx context.Context, name string) (driver.Token, error) {
	for {
		tok, err := w.TryLock(ctx, name)
		if !errors.Is(err, driver.ErrLockHeld) {
			return tok, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(poll):
		}
	}
}

func main() {
	serve.Driver(func(ctx context.Context, o driver.Options) (driver.Driver, error) {
		d, err := file.Open(ctx, o)
		if err != nil {
			return nil, err
		}
		return watching{d}, nil
	})
}
