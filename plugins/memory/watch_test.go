package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup/driver"
)

func TestNativeWatch(t *testing.T) {
	ctx := context.Background()
	url := "memory://" + t.Name()
	open := func(member string, ttl time.Duration) driver.Driver {
		d, err := memory.Open(ctx, driver.Options{URL: url, Member: member, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(ctx) })
		return d
	}
	obs, a := open("obs", time.Minute), open("a", 300*time.Millisecond)
	if err := obs.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := obs.(driver.Watcher).Watch(ctx, "missing"); !errors.Is(err, driver.ErrGroupNotFound) {
		t.Fatalf("watching a missing group: %v", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	events, errc, err := obs.(driver.Watcher).Watch(wctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	next := func(want driver.Event) {
		t.Helper()
		select {
		case ev := <-events:
			if ev != want {
				t.Fatalf("got %+v, want %+v", ev, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %+v within 5s", want)
		}
	}
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	next(driver.Event{Type: driver.Joined, Group: "g", Member: "a"})
	// a stops heartbeating: its expiry is a Left too.
	next(driver.Event{Type: driver.Left, Group: "g", Member: "a"})
	cancel()
	if _, open := <-events; open {
		t.Fatal("events still open after the context ended")
	}
	if err := <-errc; err != nil {
		t.Fatalf("after the context ended: %v; want nil", err)
	}

	// Deleting the group ends a watch with ErrGroupNotFound.
	events, errc, err = obs.(driver.Watcher).Watch(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, open := <-events; open {
		t.Fatal("events still open after the group was deleted")
	}
	if err := <-errc; !errors.Is(err, driver.ErrGroupNotFound) {
		t.Fatalf("after the group was deleted: %v; want ErrGroupNotFound", err)
	}
}

// Capabilities and forced-down marks of a live member are Updated events;
// a mark on a member not joined, or one that changes nothing, is none.
func TestNativeWatchUpdates(t *testing.T) {
	ctx := context.Background()
	url := "memory://" + t.Name()
	open := func(member string) driver.Driver {
		d, err := memory.Open(ctx, driver.Options{URL: url, Member: member, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(ctx) })
		return d
	}
	obs, a := open("obs"), open("a")
	if err := obs.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, _, err := obs.(driver.Watcher).Watch(wctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	updated := driver.Event{Type: driver.Updated, Group: "g", Member: "a"}
	steps := []func() error{
		func() error { return a.SetCapabilities(ctx, "g", []byte{0x81, 0xa1, 'k', 0x01}) },
		func() error { return obs.SetForcedDown(ctx, "g", "a", true) },
		func() error { return obs.SetForcedDown(ctx, "g", "ghost", true) }, // not joined: nothing
		func() error { return obs.SetForcedDown(ctx, "g", "a", true) },     // no change: nothing
		func() error { return obs.SetForcedDown(ctx, "g", "a", false) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		select {
		case ev := <-events:
			if ev != updated {
				t.Fatalf("got %+v, want %+v", ev, updated)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no Updated event within 5s")
		}
	}
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %+v", ev)
	default: // events are queued in the call that makes them
	}
}
