package servicegroup_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// The scenarios of issue 13, each driven through gates at the point where
// the race happened, not by timing luck.

// loseSession makes session 0's next heartbeat say the session is lost and
// stops recovery inside old.Close until the returned point is released.
func loseSession(t *testing.T, g *gates) *point {
	closing := newPoint()
	g.set("Close", hook{pre: func(d *gated) {
		if d.n == 0 {
			closing.stop()
		}
	}})
	g.set("Heartbeat", hook{post: func(d *gated, err error) error {
		if d.n == 0 {
			return driver.ErrSessionLost
		}
		return err
	}})
	return closing
}

// Item 1: a TryAcquire that completes on the old session while recovery is
// closing it is never filed as held.
func TestAcquireDuringRecovery(t *testing.T) {
	u := memURL()
	a, g := openGated(t, u, "a")
	b, _ := openGated(t, u, "b")
	inTry := newPoint()
	g.set("TryLock", hook{pre: func(d *gated) {
		if d.n == 0 {
			inTry.stop()
		}
	}})
	l := a.Lock("l")
	res := make(chan error, 1)
	go func() { _, err := l.TryAcquire(bgctx(t)); res <- err }()
	inTry.wait(t, "TryLock on the first session")
	closing := loseSession(t, g)
	closing.wait(t, "recovery closing the old session")
	inTry.go_() // the TryLock now succeeds on the old session, in the gap
	time.Sleep(20 * time.Millisecond)
	if l.Held() {
		t.Errorf("a lock taken on a session being replaced reads as held")
	}
	g.clear("Heartbeat")
	closing.go_()
	err := <-res
	// Whatever TryAcquire said, the library's account and the backend's
	// agree, and b can have the lock whenever a does not hold it.
	within(t, 5*time.Second, "a holds the lock on the new session, or nobody does", func() bool {
		if !l.Held() {
			return true
		}
		d := g.session(g.count() - 1)
		h, herr := d.LockHolder(context.Background(), "l")
		return herr == nil && h.Token == l.Token() && h.Session == d.SessionID()
	})
	holderOK(t, b, l, "l")
	if err == nil && !l.Held() {
		select {
		case <-l.Lost():
		default:
			t.Errorf("TryAcquire succeeded, the lock is not held, and Lost never fired")
		}
	}
}

// Item 1, Join: a Join completing on the old session in the gap is re-joined
// on the new one.
func TestJoinDuringRecovery(t *testing.T) {
	u := memURL()
	a, g := openGated(t, u, "a")
	obs, _ := openGated(t, u, "obs")
	if err := obs.CreateGroup(bgctx(t), "g"); err != nil {
		t.Fatal(err)
	}
	inJoin := newPoint()
	g.set("Join", hook{pre: func(d *gated) {
		if d.n == 0 {
			inJoin.stop()
		}
	}})
	res := make(chan error, 1)
	go func() { res <- a.Join(bgctx(t), "g", nil) }()
	inJoin.wait(t, "Join on the first session")
	closing := loseSession(t, g)
	closing.wait(t, "recovery closing the old session")
	inJoin.go_()
	g.clear("Heartbeat")
	closing.go_()
	if err := <-res; err != nil {
		t.Fatalf("join: %v", err)
	}
	within(t, 5*time.Second, "a is up after the session was replaced", func() bool {
		up, _ := obs.IsUp(context.Background(), "g", "a")
		return up
	})
}

// Item 4: a caller's deadline during TryAcquire never leaves the lock held
// by a session that does not know it.
func TestCancelledTryAcquireLeaksNothing(t *testing.T) {
	u := memURL()
	a, g := openGated(t, u, "a")
	slow := newPoint()
	g.set("TryLock", hook{post: func(d *gated, err error) error {
		slow.stop() // taken on the backend; the answer is late
		return err
	}})
	l := a.Lock("l")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	go func() { slow.wait(t, "TryLock"); time.Sleep(40 * time.Millisecond); slow.go_() }()
	if _, err := l.TryAcquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("TryAcquire past its deadline: %v; want DeadlineExceeded", err)
	}
	g.clear("TryLock")
	within(t, 5*time.Second, "the abandoned lock is released", func() bool {
		_, _, err := a.LockHolder(context.Background(), "l")
		return errors.Is(err, servicegroup.ErrNotLocked)
	})
	if _, err := l.TryAcquire(bgctx(t)); err != nil {
		t.Errorf("TryAcquire after the cancelled one: %v", err)
	}
}

// Item 4, Join: a cancelled Join leaves no member behind, and the next Join
// succeeds.
func TestCancelledJoinLeaksNothing(t *testing.T) {
	u := memURL()
	a, g := openGated(t, u, "a")
	if err := a.CreateGroup(bgctx(t), "g"); err != nil {
		t.Fatal(err)
	}
	slow := newPoint()
	g.set("Join", hook{post: func(d *gated, err error) error { slow.stop(); return err }})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	go func() { slow.wait(t, "Join"); time.Sleep(40 * time.Millisecond); slow.go_() }()
	if err := a.Join(ctx, "g", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Join past its deadline: %v; want DeadlineExceeded", err)
	}
	g.clear("Join")
	if err := a.Join(bgctx(t), "g", nil); err != nil {
		t.Fatalf("Join after the cancelled one: %v", err)
	}
	if up, err := a.IsUp(bgctx(t), "g", "a"); err != nil || !up {
		t.Errorf("IsUp after the second Join: %v, %v", up, err)
	}
}

// Item 5: a failed Release keeps the holding, and can be retried.
func TestFailedReleaseIsRetryable(t *testing.T) {
	u := memURL()
	a, g := openGated(t, u, "a")
	l := a.Lock("l")
	if _, err := l.Acquire(bgctx(t)); err != nil {
		t.Fatal(err)
	}
	g.set("Unlock", hook{fail: func(*gated) error { return errTransient }})
	if err := l.Release(bgctx(t)); !errors.Is(err, errTransient) {
		t.Fatalf("Release with a failing backend: %v; want the failure", err)
	}
	if !l.Held() {
		t.Fatalf("a failed Release forgot the holding")
	}
	g.clear("Unlock")
	if err := l.Release(bgctx(t)); err != nil {
		t.Fatalf("retried Release: %v", err)
	}
	if _, _, err := a.LockHolder(bgctx(t), "l"); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("after the retried Release: %v; want ErrNotLocked", err)
	}
}

// A Release in flight says the lock is no longer held: the backend may
// free it, and another session take it, before the answer is back (the
// randomized safety run caught a grant inside that window).
func TestReleaseInFlightIsNotHeld(t *testing.T) {
	u := memURL()
	a, g := openGated(t, u, "a")
	b, _ := openGated(t, u, "b")
	l := a.Lock("l")
	if _, err := l.Acquire(bgctx(t)); err != nil {
		t.Fatal(err)
	}
	freed := newPoint()
	g.set("Unlock", hook{post: func(_ *gated, err error) error { freed.stop(); return err }})
	done := make(chan error, 1)
	go func() { done <- l.Release(bgctx(t)) }()
	freed.wait(t, "the backend's release")
	if _, err := b.Lock("l").TryAcquire(bgctx(t)); err != nil {
		t.Fatalf("another session's TryAcquire once the backend freed the lock: %v", err)
	}
	if l.Held() || l.Token() != 0 {
		t.Errorf("another session holds the lock, and the releasing Lock says Held %v, Token %d", l.Held(), l.Token())
	}
	freed.go_()
	if err := <-done; err != nil {
		t.Fatalf("Release: %v", err)
	}
	if l.Held() {
		t.Errorf("Held after Release")
	}
}

// Item 6: the keeper's lock check racing a Release and re-acquire of the
// same Lock never marks the new holding lost.
func TestCheckLocksRacesReacquire(t *testing.T) {
	u := memURL()
	a, g := openGated(t, u, "a")
	l := a.Lock("l")
	if _, err := l.Acquire(bgctx(t)); err != nil {
		t.Fatal(err)
	}
	inCheck := newPoint()
	// The keeper has read the holding's token and is about to ask the
	// backend, which will answer after the re-acquire if nothing stops it.
	g.set("LockHolder", hook{pre: func(d *gated) { inCheck.stop() }})
	inCheck.wait(t, "the keeper's lock check")
	done := make(chan error, 1)
	go func() {
		if err := l.Release(bgctx(t)); err != nil {
			done <- err
			return
		}
		_, err := l.Acquire(bgctx(t))
		done <- err
	}()
	time.Sleep(30 * time.Millisecond) // let the release and re-acquire run if they can
	g.clear("LockHolder")
	inCheck.go_()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // a few more checks
	if !l.Held() {
		t.Fatalf("the re-acquired lock was marked lost")
	}
	select {
	case <-l.Lost():
		t.Fatalf("the re-acquired lock's Lost fired")
	default:
	}
	holderOK(t, a, l, "l")
}

// Item 7: Leave racing the keeper's re-join after a lost session leaves no
// member behind.
func TestLeaveRacesRejoin(t *testing.T) {
	u := memURL()
	a, g := openGated(t, u, "a")
	obs, _ := openGated(t, u, "obs")
	if err := a.JoinOrCreate(bgctx(t), "g", nil); err != nil {
		t.Fatal(err)
	}
	inRejoin := newPoint()
	g.set("Join", hook{pre: func(d *gated) {
		if d.n > 0 {
			inRejoin.stop()
		}
	}})
	g.set("Heartbeat", hook{post: func(d *gated, err error) error {
		if d.n == 0 {
			return driver.ErrSessionLost
		}
		return err
	}})
	inRejoin.wait(t, "the keeper re-joining g")
	left := make(chan error, 1)
	go func() { left <- a.Leave(bgctx(t), "g") }()
	time.Sleep(20 * time.Millisecond)
	inRejoin.go_()
	if err := <-left; err != nil && !errors.Is(err, servicegroup.ErrNotMember) {
		t.Fatalf("leave: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // several heartbeats: no re-join
	if up, err := obs.IsUp(bgctx(t), "g", "a"); err != nil || up {
		t.Errorf("after Leave raced the re-join: IsUp %v, %v; want false", up, err)
	}
}

// Item 8: an action whose first try was cut off by a lost session after it
// happened reports success, not ErrGroupExists or ErrNotLocked.
func TestNonIdempotentNotReportedAsFailed(t *testing.T) {
	u := memURL()
	a, g := openGated(t, u, "a")
	b, _ := openGated(t, u, "b")
	cutOff := func(method string) {
		var once bool
		g.set(method, hook{post: func(d *gated, err error) error {
			if err == nil && !once {
				once = true
				return driver.ErrSessionLost // it happened; the answer is lost
			}
			return err
		}})
	}
	cutOff("CreateGroup")
	if err := a.CreateGroup(bgctx(t), "g"); err != nil {
		t.Errorf("CreateGroup whose answer was lost: %v; want nil", err)
	}
	if _, err := b.Lock("l").Acquire(bgctx(t)); err != nil {
		t.Fatal(err)
	}
	cutOff("BreakLock")
	if err := a.BreakLock(bgctx(t), "l"); err != nil {
		t.Errorf("BreakLock whose answer was lost: %v; want nil", err)
	}
}

// slowStart is a driver whose Open spends longer than the TTL before the
// backend session exists, as a plugin process starting on a loaded machine
// does, and says when the session began (driver.Began).
type slowStart struct {
	driver.Driver
	began time.Time
}

func (s slowStart) Began() time.Time { return s.began }

// A session whose driver took longer than the TTL to start, before the
// backend session began, lives: its deadline counts from driver.Began, not
// from the call to Open.
func TestSlowStartCountsFromBegan(t *testing.T) {
	var opens atomic.Int32
	open := func(ctx context.Context, o driver.Options) (driver.Driver, error) {
		opens.Add(1)
		time.Sleep(o.TTL + o.TTL/4)
		began := time.Now()
		d, err := memory.Open(ctx, o)
		if err != nil {
			return nil, err
		}
		return slowStart{Driver: d, began: began}, nil
	}
	cfg := servicegroup.Config{URL: memURL(), Member: "a",
		HeartbeatInterval: 50 * time.Millisecond, MemberTTL: 400 * time.Millisecond, DialTimeout: 5 * time.Second}
	sg, err := servicegroup.OpenDriver(bgctx(t), cfg, "memory", open)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close(context.Background())
	l := sg.Lock("l")
	if _, err := l.TryAcquire(bgctx(t)); err != nil {
		t.Fatalf("TryAcquire on a session that started slowly: %v", err)
	}
	time.Sleep(3 * cfg.MemberTTL)
	select {
	case <-l.Lost():
		t.Fatalf("the lock was lost: the session's deadline counted from before it began")
	default:
	}
	if n := opens.Load(); n != 1 {
		t.Fatalf("%d sessions opened; want 1", n)
	}
}

// TestAcquireWaitsThroughTransientFailures: a blocking Acquire whose tries
// fail because the backend was unreachable, or because one call outlived
// its own bound while the caller still waits, tries again instead of
// returning (a CLI `lock` under load used to exit with "still held").
func TestAcquireWaitsThroughTransientFailures(t *testing.T) {
	sg, g := openGated(t, memURL(), "a")
	var n atomic.Int32
	g.set("TryLock", hook{fail: func(*gated) error {
		switch n.Add(1) {
		case 1:
			return driver.Errorf("memory", "try lock", "l", driver.ErrUnavailable)
		case 2:
			return fmt.Errorf("memory: try lock \"l\": %w", context.DeadlineExceeded)
		}
		return nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := sg.Lock("l")
	if _, err := l.Acquire(ctx); err != nil {
		t.Fatalf("Acquire: %v (after %d tries)", err, n.Load())
	}
	if !l.Held() || n.Load() < 3 {
		t.Fatalf("held %v after %d tries; want held after the two failures", l.Held(), n.Load())
	}
	// A non-transient failure still ends the wait.
	g.set("TryLock", hook{fail: func(*gated) error {
		return driver.Errorf("memory", "try lock", "m", driver.ErrInvalidName)
	}})
	if _, err := sg.Lock("m").Acquire(ctx); !errors.Is(err, driver.ErrInvalidName) {
		t.Fatalf("Acquire with a permanent error: %v; want ErrInvalidName", err)
	}
}

// A read in flight when recovery closes its session fails with whatever
// the closed driver says (go-redis: "client is closed", an unavailable
// backend): it is retried on the new session, not returned.
func TestReadOnClosedSessionIsRetried(t *testing.T) {
	u := memURL()
	a, g := openGated(t, u, "a")
	if err := a.JoinOrCreate(bgctx(t), "g", nil); err != nil {
		t.Fatal(err)
	}
	inMembers := newPoint()
	g.set("Members", hook{
		pre: func(d *gated) {
			if d.n == 0 {
				inMembers.stop()
			}
		},
		post: func(d *gated, err error) error {
			if d.n == 0 {
				return fmt.Errorf("gated: %w: client is closed", driver.ErrUnavailable)
			}
			return err
		},
	})
	res := make(chan error, 1)
	go func() { _, err := a.GetAll(bgctx(t), "g"); res <- err }()
	inMembers.wait(t, "Members on the first session")
	closing := loseSession(t, g)
	closing.wait(t, "recovery closing the old session")
	g.clear("Heartbeat")
	closing.go_()
	inMembers.go_()
	if err := <-res; err != nil {
		t.Fatalf("GetAll across the session's replacement: %v", err)
	}
	if n := g.count(); n < 2 {
		t.Fatalf("%d sessions opened; want the read retried on a second", n)
	}
}
