package drivertest

import (
	"reflect"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

func (s *suite) updateTests() []test {
	return []test{
		{"a watcher sees one Updated per capabilities change and none across heartbeats", s.testWatchUpdatedCapabilities},
		{"a watcher sees one Updated when a member is forced down and one when the mark is cleared", s.testWatchUpdatedForcedDown},
	}
}

// quietFor checks that w delivers nothing for d.
func quietFor(t *testing.T, w *servicegroup.Watch, d time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if ok {
			t.Errorf("unexpected event %s %q in %q (capabilities %v, forced down %v)", ev.Type, ev.Member, ev.Group, ev.Capabilities, ev.ForcedDown)
		} else {
			t.Errorf("stream ended unexpectedly: %v", w.Err())
		}
	case <-time.After(d):
	}
}

// heartbeats is long enough for several heartbeats and watch polls.
const heartbeats = 8 * heartbeat

func expectUpdate(t *testing.T, w *servicegroup.Watch, member string, caps servicegroup.Capabilities, down bool) {
	t.Helper()
	ev := expect(t, w, servicegroup.MemberUpdated, "g", member, soon)
	if !reflect.DeepEqual(ev.Capabilities, caps) || ev.ForcedDown != down {
		t.Errorf("Updated event: capabilities %#v, forced down %v; want %#v, %v", ev.Capabilities, ev.ForcedDown, caps, down)
	}
}

func (s *suite) testWatchUpdatedCapabilities(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	obs := s.open(t, u, "obs")
	a := s.open(t, u, "a")
	mustCreate(t, obs, "g")
	w, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	if err := a.Join(ctx, "g", servicegroup.Capabilities{"v": 1}); err != nil {
		t.Fatalf("join: %v", err)
	}
	expect(t, w, servicegroup.MemberJoined, "g", "a", soon)
	// Heartbeats renew the member (its UpdatedAt moves): no update.
	quietFor(t, w, heartbeats)
	for _, v := range []int64{2, 3} {
		caps := servicegroup.Capabilities{"v": v}
		if err := a.SetCapabilities(ctx, "g", caps); err != nil {
			t.Fatalf("set capabilities: %v", err)
		}
		expectUpdate(t, w, "a", caps, false)
		quietFor(t, w, heartbeats)
	}
	// The same capabilities again change nothing.
	if err := a.SetCapabilities(ctx, "g", servicegroup.Capabilities{"v": 3}); err != nil {
		t.Fatalf("set capabilities: %v", err)
	}
	quietFor(t, w, heartbeats)
}

func (s *suite) testWatchUpdatedForcedDown(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	obs := s.open(t, u, "obs")
	if !s.supports(t, ForceDown) {
		return
	}
	a := s.open(t, u, "a")
	mustCreate(t, obs, "g")
	caps := servicegroup.Capabilities{"k": "v"}
	if err := a.Join(ctx, "g", caps); err != nil {
		t.Fatalf("join: %v", err)
	}
	w, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	expect(t, w, servicegroup.MemberJoined, "g", "a", soon)
	if err := obs.ForceDown(ctx, "g", "a", true); err != nil {
		t.Fatalf("force down: %v", err)
	}
	expectUpdate(t, w, "a", caps, true)
	quietFor(t, w, heartbeats)
	if err := obs.ForceDown(ctx, "g", "a", false); err != nil {
		t.Fatalf("clear force down: %v", err)
	}
	expectUpdate(t, w, "a", caps, false)
	quietFor(t, w, heartbeats)

	// A mark on a member not joined is no event; the member joins forced
	// down.
	if err := obs.ForceDown(ctx, "g", "later", true); err != nil {
		t.Fatalf("force down a member not joined: %v", err)
	}
	quietFor(t, w, heartbeats)
	later := s.open(t, u, "later")
	if err := later.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	if ev := expect(t, w, servicegroup.MemberJoined, "g", "later", soon); !ev.ForcedDown {
		t.Errorf("Joined event of a member forced down before it joined says ForcedDown false")
	}
}
