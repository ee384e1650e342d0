package drivertest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

func (s *suite) sessionTests() []test {
	return []test{
		{"opening an unreachable address fails within the dial timeout naming the backend and address", s.testUnreachable},
		{"Close is idempotent and operations after Close return ErrClosed", s.testCloseIdempotent},
		{"after Close the member is gone from every group and its locks are free at once", s.testCloseFreesAtOnce},
		{"a session that stops heartbeating expires after its TTL", s.testExpiry},
		{"after a lost session the core opens a new one and re-joins every group with the same capabilities", s.testRejoin},
		{"opening a session with the same instance ends the earlier one at once", s.testSameInstance},
	}
}

func (s *suite) testUnreachable(t *testing.T) {
	addr := s.b.UnreachableURL
	if addr == "" {
		skip(t, "Backend.UnreachableURL is not set")
	}
	const dial = 2 * time.Second
	// Within the dial timeout, plus slack for a loaded machine; a hang is
	// reported instead of hanging the run.
	const limit = dial + 3*time.Second

	type result struct {
		d   driver.Driver
		err error
	}
	res := make(chan result, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), dial)
		defer cancel()
		opts := s.options(addr, "m", ttl)
		opts.DialTimeout = dial
		d, err := s.b.Open(ctx, opts)
		res <- result{d, err}
	}()
	var r result
	select {
	case r = <-res:
	case <-time.After(limit):
		t.Fatalf("Open(%q) still running after %v (dial timeout %v)", addr, limit, dial)
	}
	if r.err == nil {
		_ = r.d.Close(context.Background())
		t.Fatalf("Open(%q) succeeded; want an error", addr)
	}
	t.Logf("Open(%q) failed after %v: %v", addr, time.Since(start).Round(time.Millisecond), r.err)
	checkNames(t, r.err, s.b.Name, addr)
	if !errors.Is(r.err, driver.ErrUnavailable) {
		t.Errorf("Open(%q): %v; want an error matching ErrUnavailable (see driver.Unavailable)", addr, r.err)
	}

	// Through the core: the same, and the error says it was opening.
	start = time.Now()
	_, err := servicegroup.OpenDriver(context.Background(), servicegroup.Config{
		URL: addr, Member: "m", HeartbeatInterval: heartbeat, MemberTTL: ttl, DialTimeout: dial,
	}, s.b.Name, s.b.Open)
	if err == nil {
		t.Fatalf("OpenDriver(%q) succeeded; want an error", addr)
	}
	if d := time.Since(start); d > limit {
		t.Errorf("OpenDriver(%q) took %v; want within the dial timeout %v", addr, d, dial)
	}
	checkNames(t, err, s.b.Name, addr)
}

// checkNames checks that err names the backend and the address (the whole
// URL, or its host and path).
func checkNames(t *testing.T, err error, backend, addr string) {
	t.Helper()
	msg := err.Error()
	if !strings.Contains(msg, backend) {
		t.Errorf("error %q does not name the backend %q", msg, backend)
	}
	where := []string{addr, driver.Redact(addr)}
	if u, perr := url.Parse(addr); perr == nil && u.Host+u.Path != "" {
		where = append(where, u.Host+u.Path)
	}
	for _, w := range where {
		if strings.Contains(msg, w) {
			return
		}
	}
	t.Errorf("error %q does not name the address %q", msg, addr)
}

func (s *suite) testCloseIdempotent(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)

	// The session itself.
	d := s.raw(t, u, "m", longTTL)
	if err := d.CreateGroup(ctx, "g"); err != nil {
		t.Fatalf("create group: %v", err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(ctx); err != nil {
		t.Errorf("second Close: %v; want nil (Close is idempotent)", err)
	}
	if !closed(d.Done()) {
		t.Errorf("Done is not closed after Close")
	}
	calls := map[string]func() error{
		"Heartbeat":   func() error { return d.Heartbeat(ctx) },
		"Join":        func() error { return d.Join(ctx, "g", nil) },
		"Members":     func() error { _, err := d.Members(ctx, "g"); return err },
		"Groups":      func() error { _, err := d.Groups(ctx); return err },
		"CreateGroup": func() error { return d.CreateGroup(ctx, "h") },
	}
	if !s.unsupported[Locks] {
		calls["TryLock"] = func() error { _, err := d.TryLock(ctx, "l"); return err }
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, driver.ErrClosed) {
			t.Errorf("%s after Close: %v; want ErrClosed", name, err)
		} else if !strings.Contains(err.Error(), s.b.Name) {
			t.Errorf("%s after Close: %q does not name the backend %q", name, err, s.b.Name)
		}
	}

	// Through the core.
	sg := s.open(t, u, "n")
	if err := sg.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := sg.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sg.Close(ctx); err != nil {
		t.Errorf("second Close: %v; want nil (Close is idempotent)", err)
	}
	core := map[string]func() error{
		"Join":       func() error { return sg.Join(ctx, "g", nil) },
		"Members":    func() error { _, err := sg.Members(ctx, "g"); return err },
		"Watch":      func() error { _, err := sg.Watch(ctx, "g"); return err },
		"TryAcquire": func() error { _, err := sg.Lock("l").TryAcquire(ctx); return err },
		"Campaign":   func() error { _, err := sg.Campaign(ctx, "g"); return err },
	}
	for name, call := range core {
		if err := call(); !errors.Is(err, servicegroup.ErrClosed) {
			t.Errorf("ServiceGroup.%s after Close: %v; want ErrClosed", name, err)
		}
	}
}

func (s *suite) testCloseFreesAtOnce(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	locks := !s.unsupported[Locks]

	a := s.raw(t, u, "a", longTTL)
	b := s.raw(t, u, "b", longTTL)
	for _, g := range []string{"g1", "g2"} {
		if err := a.CreateGroup(ctx, g); err != nil {
			t.Fatalf("create %q: %v", g, err)
		}
		if err := a.Join(ctx, g, []byte{0x80}); err != nil {
			t.Fatalf("join %q: %v", g, err)
		}
		if err := rawMembersAre(b, g, "a")(); err != nil {
			t.Fatal(err)
		}
	}
	var tok driver.Token
	if locks {
		var err error
		if tok, err = a.TryLock(ctx, "l"); err != nil {
			t.Fatalf("lock: %v", err)
		}
	}
	if err := a.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// At once: no waiting.
	for _, g := range []string{"g1", "g2"} {
		if err := rawMembersAre(b, g)(); err != nil {
			t.Errorf("right after Close: %v", err)
		}
	}
	if locks {
		if h, err := b.LockHolder(ctx, "l"); !errors.Is(err, driver.ErrNotLocked) {
			t.Errorf("LockHolder right after the holder's Close: %+v, %v; want ErrNotLocked", h, err)
		}
		tok2, err := b.TryLock(ctx, "l")
		if err != nil {
			t.Errorf("TryLock right after the holder's Close: %v", err)
		} else if tok2 <= tok {
			t.Errorf("token after the holder's Close %d, want > %d", tok2, tok)
		}
	}

	// Through the core.
	sa := s.open(t, u, "sa")
	sb := s.open(t, u, "sb")
	if err := sa.Join(ctx, "g1", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := sa.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := membersAre(sb, "g1")(); err != nil {
		t.Errorf("right after ServiceGroup.Close: %v", err)
	}
}

func (s *suite) testExpiry(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	locks := !s.unsupported[Locks]

	// b first: opening a session may start a process, which must not eat
	// into a's short TTL.
	b := s.raw(t, u, "b", longTTL)
	// Twice the suite's TTL: on a loaded machine a heartbeat every
	// quarter TTL has been starved for a whole second.
	short := 2 * ttl
	a := s.raw(t, u, "a", short)
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	var tok driver.Token
	if locks {
		var err error
		if tok, err = a.TryLock(ctx, "l"); err != nil {
			t.Fatalf("lock: %v", err)
		}
	}

	// While it heartbeats it stays, over several TTLs. The heartbeats run
	// on their own, so a slow listing never delays one.
	stop, beatErr := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(beatErr)
		for {
			if err := a.Heartbeat(ctx); err != nil {
				beatErr <- err
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(short / 8):
			}
		}
	}()
	for end := time.Now().Add(3 * short); time.Now().Before(end); time.Sleep(short / 4) {
		if err := rawMembersAre(b, "g", "a")(); err != nil {
			close(stop)
			<-beatErr
			t.Fatalf("heartbeating session: %v", err)
		}
	}
	close(stop)
	if err := <-beatErr; err != nil {
		t.Fatalf("Heartbeat of a live session: %v", err)
	}

	// Then it stops.
	stopped := time.Now()
	eventually(t, expiry, rawMembersAre(b, "g"))
	t.Logf("membership vanished %v after the last heartbeat (TTL %v)", time.Since(stopped).Round(time.Millisecond), short)
	if locks {
		eventually(t, soon, func() error {
			tok2, err := b.TryLock(ctx, "l")
			if err != nil {
				return fmt.Errorf("TryLock of an expired holder's lock: %w", err)
			}
			if tok2 <= tok {
				t.Errorf("token after expiry %d, want > %d", tok2, tok)
			}
			return nil
		})
	}
	if err := a.Heartbeat(ctx); !errors.Is(err, driver.ErrSessionLost) {
		t.Errorf("Heartbeat of an expired session: %v; want ErrSessionLost", err)
	}
	eventually(t, soon, func() error {
		if !closed(a.Done()) {
			return errors.New("Done of an expired session is not closed")
		}
		return nil
	})
	// The expired session cannot bring its membership back.
	if err := a.Join(ctx, "g", nil); err == nil {
		t.Errorf("Join through an expired session succeeded; want ErrSessionLost")
	}
	if err := rawMembersAre(b, "g")(); err != nil {
		t.Errorf("after the expired session tried to join: %v", err)
	}
	if locks {
		if _, err := a.TryLock(ctx, "other"); err == nil {
			t.Errorf("TryLock through an expired session succeeded; want ErrSessionLost")
		}
		if h, err := b.LockHolder(ctx, "other"); !errors.Is(err, driver.ErrNotLocked) {
			t.Errorf("a lock taken through an expired session: holder %+v, %v; want free", h, err)
		}
	}
}

func (s *suite) testRejoin(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	c := s.control(t)
	sg := s.openWith(t, u, "m", c.Open)
	obs := s.open(t, u, "obs")

	mustCreate(t, obs, "g1")
	caps1 := servicegroup.Capabilities{"zone": "a", "slots": int64(4)}
	caps2 := servicegroup.Capabilities{"zone": "b"}
	if err := sg.Join(ctx, "g1", servicegroup.Capabilities{"old": true}); err != nil {
		t.Fatalf("join g1: %v", err)
	}
	if err := sg.SetCapabilities(ctx, "g1", caps1); err != nil {
		t.Fatalf("set capabilities: %v", err)
	}
	if err := sg.JoinOrCreate(ctx, "g2", caps2); err != nil {
		t.Fatalf("join-or-create g2: %v", err)
	}
	if n := c.sessions(); n != 1 {
		t.Fatalf("%d sessions opened; want 1", n)
	}
	w, err := obs.Watch(ctx, "g1")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	expect(t, w, servicegroup.MemberJoined, "g1", "m", soon)

	c.set(frozen)
	eventually(t, expiry, membersAre(obs, "g1"))
	eventually(t, soon, membersAre(obs, "g2"))
	// Frozen, m stays gone until the watcher has seen it go (a polling
	// watch does not see a gap shorter than its interval).
	expect(t, w, servicegroup.MemberLeft, "g1", "m", soon)
	if err := c.session(0).Heartbeat(ctx); !errors.Is(err, driver.ErrSessionLost) {
		t.Errorf("Heartbeat of the expired session: %v; want ErrSessionLost", err)
	}
	c.set(live)

	want := map[string]servicegroup.Capabilities{"g1": caps1, "g2": caps2}
	eventually(t, expiry, func() error {
		for g, caps := range want {
			ms, err := obs.Members(ctx, g)
			if err != nil {
				return err
			}
			if len(ms) != 1 || ms[0].ID != "m" {
				return fmt.Errorf("members of %q: %q, want [m]", g, ids(ms))
			}
			if !reflect.DeepEqual(ms[0].Capabilities, caps) {
				return fmt.Errorf("capabilities in %q after re-join: %#v, want %#v", g, ms[0].Capabilities, caps)
			}
		}
		return nil
	})
	// The watcher saw it come back, with its capabilities.
	if ev := expect(t, w, servicegroup.MemberJoined, "g1", "m", soon); !reflect.DeepEqual(ev.Capabilities, caps1) {
		t.Errorf("re-joined with capabilities %#v, want %#v", ev.Capabilities, caps1)
	}
	if n := c.sessions(); n < 2 {
		t.Errorf("%d sessions opened; want a new one after the loss", n)
	}
	// And the new session is kept alive.
	time.Sleep(2 * ttl)
	if err := membersAre(obs, "g1", "m")(); err != nil {
		t.Errorf("%v two TTLs after the re-join", err)
	}
}

func (s *suite) testSameInstance(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	locks := !s.unsupported[Locks]
	obs := s.raw(t, u, "obs", longTTL)
	if err := obs.CreateGroup(ctx, "g"); err != nil {
		t.Fatalf("create: %v", err)
	}

	opts := s.options(u, "m", longTTL)
	open := func() driver.Driver {
		d, err := s.b.Open(ctx, opts)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = d.Close(context.Background()) })
		return d
	}
	first := open()
	if err := first.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	if locks {
		if _, err := first.TryLock(ctx, "l"); err != nil {
			t.Fatalf("lock: %v", err)
		}
	}
	second := open()
	// At once: the ghost of a killed plugin must not hold the member id or
	// the lock until its TTL runs out.
	if err := rawMembersAre(obs, "g")(); err != nil {
		t.Errorf("right after a new session of the same instance: %v", err)
	}
	if err := second.Join(ctx, "g", nil); err != nil {
		t.Errorf("join through the new session of the same instance: %v", err)
	}
	if locks {
		if _, err := second.TryLock(ctx, "l"); err != nil {
			t.Errorf("lock through the new session of the same instance: %v", err)
		}
	}
	if err := first.Heartbeat(ctx); !errors.Is(err, driver.ErrSessionLost) {
		t.Errorf("Heartbeat of the ended earlier session: %v; want ErrSessionLost", err)
	}
	eventually(t, soon, func() error {
		if !closed(first.Done()) {
			return errors.New("Done of the ended earlier session is not closed")
		}
		return nil
	})
	if err := rawMembersAre(obs, "g", "m")(); err != nil {
		t.Error(err)
	}
}
