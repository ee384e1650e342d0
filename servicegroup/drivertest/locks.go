package drivertest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

func (s *suite) lockTests() []test {
	return []test{
		{"Acquire then Release succeeds and a second holder waits until the first releases", s.testLockHandOver},
		{"locks are not re-entrant and two lock objects of one name on one session exclude each other", s.testNotReentrant},
		{"releasing a lock one does not hold returns ErrNotLocked and frees nothing", s.testReleaseNotHeld},
		{"holding lock A while another holder takes lock B leaves A held", s.testIndependentLocks},
		{"waiting honours the context deadline with context.DeadlineExceeded", s.testAcquireContext},
		{"fencing tokens strictly increase across successive holders", s.testTokensIncrease},
		{"a holder whose session expires loses the lock", s.testHolderExpires},
		{"a partitioned holder is told it lost the lock before anyone else gets it", s.testPartitionedHolderToldFirst},
		{"force-breaking a lock frees it and tells the old holder it is lost", s.testBreakLock},
		{"mutual exclusion under load gives an exact count", s.testMutualExclusion},
	}
}

// holderIs checks who holds name, as sg sees it.
func holderIs(ctx context.Context, sg *servicegroup.ServiceGroup, name, member string, tok servicegroup.Token) error {
	m, got, err := sg.LockHolder(ctx, name)
	if err != nil {
		return fmt.Errorf("LockHolder(%q): %w", name, err)
	}
	if m != member || got != tok {
		return fmt.Errorf("LockHolder(%q): %q with token %d; want %q with %d", name, m, got, member, tok)
	}
	return nil
}

// acquisition is an Acquire running in the background.
type acquisition struct {
	done chan struct{}
	tok  servicegroup.Token
	err  error
}

func startAcquire(ctx context.Context, l *servicegroup.Lock) *acquisition {
	a := &acquisition{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.tok, a.err = l.Acquire(ctx)
	}()
	return a
}

func (a *acquisition) wait(t *testing.T, timeout time.Duration) servicegroup.Token {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(timeout):
		t.Fatalf("Acquire still waiting after %v", timeout)
	}
	if a.err != nil {
		t.Fatalf("Acquire: %v", a.err)
	}
	return a.tok
}

func (s *suite) testLockHandOver(t *testing.T) {
	if !s.supports(t, Locks) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	la, lb := a.Lock("l"), b.Lock("l")
	tok, err := la.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	if tok == 0 || la.Token() != tok || !la.Held() {
		t.Errorf("after Acquire: token %d, Token() %d, Held %v", tok, la.Token(), la.Held())
	}
	if err := holderIs(ctx, b, "l", "a", tok); err != nil {
		t.Error(err)
	}
	if _, err := lb.TryAcquire(ctx); !errors.Is(err, servicegroup.ErrLockHeld) {
		t.Errorf("TryAcquire of a held lock: %v; want ErrLockHeld", err)
	}
	w := startAcquire(ctx, lb)
	time.Sleep(3 * heartbeat)
	if closed(w.done) {
		t.Fatalf("a second holder got the lock while the first holds it (token %d, %v; first holder: token %d, held %v, lost %v)",
			w.tok, w.err, tok, la.Held(), closed(la.Lost()))
	}
	if err := la.Release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
	if la.Held() || la.Token() != 0 {
		t.Errorf("after Release: Held %v, Token %d", la.Held(), la.Token())
	}
	tok2 := w.wait(t, soon)
	if tok2 <= tok {
		t.Errorf("waiter's token %d; want > %d", tok2, tok)
	}
	if err := holderIs(ctx, a, "l", "b", tok2); err != nil {
		t.Error(err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Errorf("release: %v", err)
	}
	if _, _, err := a.LockHolder(ctx, "l"); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("LockHolder of a free lock: %v; want ErrNotLocked", err)
	}
	if closed(la.Lost()) || closed(lb.Lost()) {
		t.Errorf("Release closed Lost")
	}
}

func (s *suite) testNotReentrant(t *testing.T) {
	if !s.supports(t, Locks) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	l1, l2 := a.Lock("l"), a.Lock("l")
	tok, err := l1.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	if _, err := l1.TryAcquire(ctx); !errors.Is(err, servicegroup.ErrLockHeld) {
		t.Errorf("TryAcquire again on the same Lock: %v; want ErrLockHeld", err)
	}
	if _, err := l2.TryAcquire(ctx); !errors.Is(err, servicegroup.ErrLockHeld) {
		t.Errorf("TryAcquire on another Lock of the same name and session: %v; want ErrLockHeld", err)
	}
	for what, l := range map[string]*servicegroup.Lock{"the same Lock": l1, "another Lock of the same name and session": l2} {
		c, cancel := context.WithTimeout(ctx, 3*heartbeat)
		if _, err := l.Acquire(c); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Acquire on %s: %v; want to wait until the deadline", what, err)
		}
		cancel()
	}
	if err := holderIs(ctx, a, "l", "a", tok); err != nil {
		t.Error(err)
	}
	if err := l2.Release(ctx); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("Release of the Lock that did not get it: %v; want ErrNotLocked", err)
	}
	if err := holderIs(ctx, a, "l", "a", tok); err != nil {
		t.Errorf("after the other Lock's Release: %v", err)
	}
	if err := l1.Release(ctx); err != nil {
		t.Errorf("release: %v", err)
	}

	// The session itself.
	d := s.raw(t, u, "raw", longTTL)
	if _, err := d.TryLock(ctx, "r"); err != nil {
		t.Fatalf("lock: %v", err)
	}
	if _, err := d.TryLock(ctx, "r"); !errors.Is(err, driver.ErrLockHeld) {
		t.Errorf("TryLock again on the same session: %v; want ErrLockHeld", err)
	}
}

func (s *suite) testReleaseNotHeld(t *testing.T) {
	if !s.supports(t, Locks) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	if err := a.Lock("l").Release(ctx); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("Release of a lock never taken: %v; want ErrNotLocked", err)
	}
	lb := b.Lock("l")
	tok, err := lb.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	if err := a.Lock("l").Release(ctx); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("Release of a lock another holds: %v; want ErrNotLocked", err)
	}
	if err := holderIs(ctx, a, "l", "b", tok); err != nil {
		t.Errorf("after another's Release: %v", err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := lb.Release(ctx); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("Release twice: %v; want ErrNotLocked", err)
	}

	// The session itself: a wrong token or another session frees nothing.
	da := s.raw(t, u, "ra", longTTL)
	db := s.raw(t, u, "rb", longTTL)
	if err := da.Unlock(ctx, "r", 1); !errors.Is(err, driver.ErrNotLocked) {
		t.Errorf("Unlock of a free lock: %v; want ErrNotLocked", err)
	}
	rt, err := da.TryLock(ctx, "r")
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	for what, unlock := range map[string]func() error{
		"another session with the holder's token": func() error { return db.Unlock(ctx, "r", rt) },
		"the holder with a wrong token":           func() error { return da.Unlock(ctx, "r", rt+1) },
		"the holder with an older token":          func() error { return da.Unlock(ctx, "r", rt-1) },
	} {
		if err := unlock(); !errors.Is(err, driver.ErrNotLocked) {
			t.Errorf("Unlock by %s: %v; want ErrNotLocked", what, err)
		}
		if h, err := db.LockHolder(ctx, "r"); err != nil || h.Member != "ra" || h.Token != rt {
			t.Errorf("after Unlock by %s: holder %+v, %v; want ra with %d", what, h, err, rt)
		}
	}
	if err := da.Unlock(ctx, "r", rt); err != nil {
		t.Errorf("Unlock by the holder: %v", err)
	}
}

func (s *suite) testIndependentLocks(t *testing.T) {
	if !s.supports(t, Locks) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	la := a.Lock("A")
	ta, err := la.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire A: %v", err)
	}
	lb := b.Lock("B")
	tb, err := lb.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire B while A is held: %v", err)
	}
	if err := holderIs(ctx, b, "A", "a", ta); err != nil {
		t.Error(err)
	}
	if err := holderIs(ctx, a, "B", "b", tb); err != nil {
		t.Error(err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatalf("release B: %v", err)
	}
	if err := holderIs(ctx, b, "A", "a", ta); err != nil {
		t.Errorf("after B's release: %v", err)
	}
	if !la.Held() || closed(la.Lost()) {
		t.Errorf("A: Held %v, lost %v", la.Held(), closed(la.Lost()))
	}
	if err := la.Release(ctx); err != nil {
		t.Errorf("release A: %v", err)
	}
}

func (s *suite) testAcquireContext(t *testing.T) {
	if !s.supports(t, Locks) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	la := a.Lock("l")
	if _, err := la.Acquire(ctx); err != nil {
		t.Fatalf("acquire: %v", err)
	}
	lb := b.Lock("l")

	const wait = 300 * time.Millisecond
	c, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	_, err := lb.Acquire(c)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire past its deadline: %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > wait+soon {
		t.Errorf("Acquire returned %v after a %v deadline", d, wait)
	}

	c2, cancel2 := context.WithCancel(ctx)
	w := startAcquire(c2, lb)
	time.Sleep(2 * heartbeat)
	cancel2()
	select {
	case <-w.done:
		if !errors.Is(w.err, context.Canceled) {
			t.Errorf("Acquire with its context cancelled: %v; want context.Canceled", w.err)
		}
	case <-time.After(soon):
		t.Fatalf("Acquire still waiting %v after its context was cancelled", soon)
	}
	if lb.Held() {
		t.Errorf("a Lock whose Acquire failed says it is held")
	}

	// A waiter that gave up does not take the lock later.
	if err := la.Release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
	time.Sleep(3 * heartbeat)
	if m, tok, err := a.LockHolder(ctx, "l"); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("after the holder released, with only waiters that gave up: held by %q (token %d), %v; want free", m, tok, err)
	}
}
