package drivertest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

func (s *suite) watchTests() []test {
	return []test{
		{"a watcher sees exactly one Joined when a member joins and one Left when it leaves", s.testWatchJoinLeave},
		{"a watcher sees Left when a member's session expires", s.testWatchExpiry},
		{"watching a missing group returns ErrGroupNotFound", s.testWatchMissing},
		{"deleting a group out of band gives watchers Left for every member then ends the stream with ErrGroupNotFound", s.testWatchDeleted},
		{"cancelling the context ends the stream and closing the session ends it with ErrClosed", s.testWatchCancel},
		{"events reach watchers in order", s.testWatchOrder},
		{"a slow consumer blocks neither other watchers nor the heartbeat", s.testWatchSlowConsumer},
	}
}

// next returns w's next event, failing t if none comes within timeout;
// ok is false if the stream ended.
func next(t *testing.T, w *servicegroup.Watch, timeout time.Duration) (ev servicegroup.Event, ok bool) {
	t.Helper()
	select {
	case ev, ok = <-w.Events():
		return ev, ok
	case <-time.After(timeout):
		t.Fatalf("no event within %v", timeout)
		return ev, false
	}
}

// expect checks that w's next event is typ for member in group.
func expect(t *testing.T, w *servicegroup.Watch, typ servicegroup.EventType, group, member string, timeout time.Duration) servicegroup.Event {
	t.Helper()
	ev, ok := next(t, w, timeout)
	if !ok {
		t.Fatalf("stream ended (%v); want %s %q", w.Err(), typ, member)
	}
	if ev.Type != typ || ev.Group != group || ev.Member != member {
		t.Fatalf("event %s %q in %q; want %s %q in %q", ev.Type, ev.Member, ev.Group, typ, member, group)
	}
	return ev
}

// quiet checks that w delivers nothing for a few watch intervals.
func quiet(t *testing.T, w *servicegroup.Watch) {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if ok {
			t.Errorf("unexpected event %s %q in %q", ev.Type, ev.Member, ev.Group)
		} else {
			t.Errorf("stream ended unexpectedly: %v", w.Err())
		}
	case <-time.After(6 * watchInterval):
	}
}

// drain reads w until it ends, within timeout.
func drain(t *testing.T, w *servicegroup.Watch, timeout time.Duration) []servicegroup.Event {
	t.Helper()
	var evs []servicegroup.Event
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		case <-deadline:
			t.Fatalf("stream still open after %v (%d events read)", timeout, len(evs))
		}
	}
}

func (s *suite) testWatchJoinLeave(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	obs := s.open(t, u, "obs")
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	mustCreate(t, obs, "g")
	if err := b.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	w, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	expect(t, w, servicegroup.MemberJoined, "g", "b", soon) // already there
	caps := servicegroup.Capabilities{"k": "v"}
	if err := a.Join(ctx, "g", caps); err != nil {
		t.Fatalf("join: %v", err)
	}
	ev := expect(t, w, servicegroup.MemberJoined, "g", "a", soon)
	if !reflect.DeepEqual(ev.Capabilities, caps) {
		t.Errorf("Joined event capabilities %#v, want %#v", ev.Capabilities, caps)
	}
	if err := a.Leave(ctx, "g"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	expect(t, w, servicegroup.MemberLeft, "g", "a", soon)
	quiet(t, w)
}

func (s *suite) testWatchExpiry(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	obs := s.open(t, u, "obs")
	mustCreate(t, obs, "g")
	z := s.raw(t, u, "z", ttl)
	if err := z.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	w, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	expect(t, w, servicegroup.MemberJoined, "g", "z", soon)
	expect(t, w, servicegroup.MemberLeft, "g", "z", expiry)
	quiet(t, w)
}

func (s *suite) testWatchMissing(t *testing.T) {
	u := s.b.URL(t)
	obs := s.open(t, u, "obs")
	if _, err := obs.Watch(tctx(t), "missing"); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Errorf("watching a missing group: %v; want ErrGroupNotFound", err)
	}
}

func (s *suite) testWatchDeleted(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	// The watcher polls slowly, so the members leave and the group goes
	// between two of its looks: it finds the group gone with members in it.
	obs := s.open(t, u, "obs", withWatchInterval(time.Second))
	op := s.open(t, u, "operator")
	mustCreate(t, op, "g")
	a := s.raw(t, u, "a", longTTL)
	b := s.raw(t, u, "b", longTTL)
	for _, d := range []interface {
		Join(context.Context, string, []byte) error
	}{a, b} {
		if err := d.Join(ctx, "g", nil); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	w, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	joined := map[string]bool{}
	for range 2 {
		ev, ok := next(t, w, soon)
		if !ok || ev.Type != servicegroup.MemberJoined {
			t.Fatalf("event %+v (%v); want the members joined", ev, ok)
		}
		joined[ev.Member] = true
	}
	if err := a.Leave(ctx, "g"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if err := b.Leave(ctx, "g"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if err := op.DeleteGroup(ctx, "g"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	left := map[string]int{}
	for _, ev := range drain(t, w, soon) {
		if ev.Type != servicegroup.MemberLeft || ev.Group != "g" {
			t.Errorf("event %s %q in %q; want only Left", ev.Type, ev.Member, ev.Group)
			continue
		}
		left[ev.Member]++
	}
	if !reflect.DeepEqual(left, map[string]int{"a": 1, "b": 1}) {
		t.Errorf("Left events per member %v; want one each for a and b", left)
	}
	if err := w.Err(); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Errorf("Err after the group was deleted: %v; want ErrGroupNotFound", err)
	}
}

func (s *suite) testWatchCancel(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	obs := s.open(t, u, "obs")
	mustCreate(t, obs, "g")
	if err := obs.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	w, err := obs.Watch(wctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	expect(t, w, servicegroup.MemberJoined, "g", "obs", soon)
	cancel()
	drain(t, w, soon)
	if err := w.Err(); err != nil {
		t.Errorf("Err after the context was cancelled: %v; want nil", err)
	}

	// One never read from: cancelling must not leave its goroutine stuck
	// on a full buffer (Close below waits for it).
	wctx2, cancel2 := context.WithCancel(ctx)
	if _, err := obs.Watch(wctx2, "g"); err != nil {
		t.Fatalf("watch: %v", err)
	}
	cancel2()

	// Closing the ServiceGroup ends the rest.
	w3, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	expect(t, w3, servicegroup.MemberJoined, "g", "obs", soon)
	done := make(chan error, 1)
	go func() { done <- obs.Close(context.Background()) }()
	drain(t, w3, soon)
	if err := w3.Err(); !errors.Is(err, servicegroup.ErrClosed) {
		t.Errorf("Err after Close: %v; want ErrClosed", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("close: %v", err)
		}
	case <-time.After(soon):
		t.Errorf("Close did not return within %v with watches open", soon)
	}
}

func (s *suite) testWatchOrder(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	obs := s.open(t, u, "obs")
	mustCreate(t, obs, "g")
	sgs := map[string]*servicegroup.ServiceGroup{}
	for _, m := range []string{"a", "b", "c"} {
		sgs[m] = s.open(t, u, m)
	}
	w, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	steps := []struct {
		member string
		join   bool
	}{
		{"a", true}, {"b", true}, {"a", false}, {"c", true}, {"b", false}, {"a", true}, {"c", false}, {"a", false},
	}
	for _, st := range steps {
		typ := servicegroup.MemberLeft
		var err error
		if st.join {
			typ = servicegroup.MemberJoined
			err = sgs[st.member].Join(ctx, "g", nil)
		} else {
			err = sgs[st.member].Leave(ctx, "g")
		}
		if err != nil {
			t.Fatalf("%s %q: %v", typ, st.member, err)
		}
		expect(t, w, typ, "g", st.member, soon)
	}
	quiet(t, w)
}

func (s *suite) testWatchSlowConsumer(t *testing.T) {
	u := s.b.URL(t)
	const n = 70 // more than a watch's buffer holds
	// Opening n sessions may take a while (n plugin processes): before the
	// test's deadline starts.
	raws := make([]driver.Driver, n)
	for i := range n {
		raws[i] = s.raw(t, u, fmt.Sprintf("m%03d", i), longTTL)
	}
	ctx := tctx(t)
	obs := s.open(t, u, "obs")
	w := s.open(t, u, "w")
	mustCreate(t, obs, "g")
	if err := w.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	slow, err := w.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	fast, err := w.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	other, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, d := range raws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Join(ctx, "g", nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("join: %v", err)
	}

	// The watches read from see every member while slow's buffer is full.
	for name, wt := range map[string]*servicegroup.Watch{"same session": fast, "other session": other} {
		seen := map[string]bool{}
		for len(seen) < n+1 {
			ev, ok := next(t, wt, soon)
			if !ok {
				t.Fatalf("%s watch ended: %v", name, wt.Err())
			}
			if ev.Type != servicegroup.MemberJoined || seen[ev.Member] {
				t.Fatalf("%s watch: event %s %q; want each member joined once", name, ev.Type, ev.Member)
			}
			seen[ev.Member] = true
		}
	}
	// The heartbeat goes on: w stays up for several TTLs, and its time
	// advances.
	t0, err := obs.UpdatedAt(ctx, "g", "w")
	if err != nil {
		t.Fatalf("UpdatedAt: %v", err)
	}
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); time.Sleep(heartbeat) {
		if err := isUp(obs, "g", "w", true)(); err != nil {
			t.Fatalf("with a slow consumer: %v", err)
		}
	}
	if t1, err := obs.UpdatedAt(ctx, "g", "w"); err != nil || !t1.After(t0) {
		t.Errorf("UpdatedAt of the slow consumer's member stayed %v (%v); heartbeats stopped", t0, err)
	}

	// And the slow consumer lost nothing.
	seen := map[string]bool{}
	for len(seen) < n+1 {
		ev, ok := next(t, slow, soon)
		if !ok {
			t.Fatalf("slow watch ended: %v", slow.Err())
		}
		if ev.Type != servicegroup.MemberJoined || seen[ev.Member] {
			t.Fatalf("slow watch: event %s %q; want each member joined once", ev.Type, ev.Member)
		}
		seen[ev.Member] = true
	}
	quiet(t, slow)
}
