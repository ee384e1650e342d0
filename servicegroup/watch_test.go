package servicegroup_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

// With a backend's native watch (memory has one), changes arrive when they
// happen, not at the next poll: with polling set to an hour, a join and a
// leave, and the updates between them, still reach the watcher.
func TestNativeWatchWakesTheWatcher(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("memory://native-watch-%d", time.Now().UnixNano()) // a fresh store
	open := func(member string) *servicegroup.ServiceGroup {
		sg, err := servicegroup.Open(ctx, servicegroup.Config{URL: url, Member: member,
			HeartbeatInterval: 100 * time.Millisecond, MemberTTL: time.Second, WatchInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sg.Close(context.Background()) })
		return sg
	}
	obs, m := open("obs"), open("m")
	if err := obs.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	w, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	next := func(want servicegroup.EventType) {
		t.Helper()
		select {
		case ev := <-w.Events():
			if ev.Type != want || ev.Member != "m" || ev.Group != "g" {
				t.Fatalf("got %+v, want %v of m", ev, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %v event within 5s although the watch polls hourly", want)
		}
	}
	if err := m.Join(ctx, "g", servicegroup.Capabilities{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	next(servicegroup.MemberJoined)
	// Updates come natively too: capabilities, a forced-down mark.
	if err := m.SetCapabilities(ctx, "g", servicegroup.Capabilities{"k": "w"}); err != nil {
		t.Fatal(err)
	}
	next(servicegroup.MemberUpdated)
	if err := obs.ForceDown(ctx, "g", "m", true); err != nil {
		t.Fatal(err)
	}
	next(servicegroup.MemberUpdated)
	if err := m.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	next(servicegroup.MemberLeft)
}
