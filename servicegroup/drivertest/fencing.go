package drivertest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Lock tests about losing a lock and fencing: tokens, expiry, an operator's
// break, and exclusion under load.

func (s *suite) testTokensIncrease(t *testing.T) {
	if !s.supports(t, Locks) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	ds := []driver.Driver{s.raw(t, u, "a", longTTL), s.raw(t, u, "b", longTTL), s.raw(t, u, "c", longTTL)}
	var last driver.Token
	take := func(d driver.Driver, i int) driver.Token {
		t.Helper()
		tok, err := d.TryLock(ctx, "l")
		if err != nil {
			t.Fatalf("lock %d: %v", i, err)
		}
		if tok <= last {
			t.Fatalf("holding %d got token %d after %d; want strictly increasing", i, tok, last)
		}
		if h, err := ds[0].LockHolder(ctx, "l"); err != nil || h.Token != tok {
			t.Errorf("LockHolder: %+v, %v; want token %d", h, err, tok)
		}
		last = tok
		return tok
	}
	for i := range 12 {
		d := ds[i%len(ds)]
		tok := take(d, i)
		if err := d.Unlock(ctx, "l", tok); err != nil {
			t.Fatalf("unlock %d: %v", i, err)
		}
	}
	// Also across a holder's Close and an operator's break.
	closer := s.raw(t, u, "closer", longTTL)
	take(closer, 100)
	if err := closer.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	tok := take(ds[0], 101)
	if !s.unsupported[BreakLock] {
		if err := ds[1].BreakLock(ctx, "l"); err != nil {
			t.Fatalf("break: %v", err)
		}
		take(ds[2], 102)
	} else if err := ds[0].Unlock(ctx, "l", tok); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	// Other names have tokens of their own, which increase too.
	other := ds[1]
	t1, err := other.TryLock(ctx, "other")
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	if err := other.Unlock(ctx, "other", t1); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	t2, err := other.TryLock(ctx, "other")
	if err != nil || t2 <= t1 {
		t.Errorf("other lock's tokens %d then %d (%v); want increasing", t1, t2, err)
	}
}

// testPartitionedHolderToldFirst: a holder that cannot reach the backend
// stops believing it holds the lock before the backend can give it to
// anyone else: zero overlap, no grace.
func (s *suite) testPartitionedHolderToldFirst(t *testing.T) {
	if !s.supports(t, Locks) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	ctrl := s.control(t)
	a := s.openWith(t, u, "a", ctrl.Open)
	b := s.open(t, u, "b")
	la := a.Lock("l")
	ta, err := la.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	ctrl.set(partitioned)
	c, cancel := context.WithTimeout(ctx, expiry)
	defer cancel()
	tb, err := b.Lock("l").Acquire(c)
	if err != nil {
		t.Fatalf("acquire after the holder was partitioned: %v", err)
	}
	if la.Held() || !closed(la.Lost()) {
		t.Errorf("b holds the lock (token %d) while the partitioned holder still does: Held %v, Lost closed %v",
			tb, la.Held(), closed(la.Lost()))
	}
	if tb <= ta {
		t.Errorf("token after the partitioned holder %d; want > %d", tb, ta)
	}
}

func (s *suite) testHolderExpires(t *testing.T) {
	if !s.supports(t, Locks) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)

	// The session itself.
	later := s.raw(t, u, "next", longTTL) // first: an open may start a process
	old := s.raw(t, u, "old", ttl)
	tok, err := old.TryLock(ctx, "raw")
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	var tok2 driver.Token
	eventually(t, expiry, func() (err error) {
		tok2, err = later.TryLock(ctx, "raw")
		return err
	})
	if tok2 <= tok {
		t.Errorf("token after the holder expired %d; want > %d", tok2, tok)
	}
	if err := old.Unlock(ctx, "raw", tok); !errors.Is(err, driver.ErrNotLocked) && !errors.Is(err, driver.ErrSessionLost) {
		t.Errorf("Unlock by the expired holder: %v; want ErrNotLocked or ErrSessionLost", err)
	}
	if h, err := later.LockHolder(ctx, "raw"); err != nil || h.Member != "next" || h.Token != tok2 {
		t.Errorf("after the expired holder's Unlock: %+v, %v; want next with %d", h, err, tok2)
	}

	// Through the core.
	ctrl := s.control(t)
	a := s.openWith(t, u, "a", ctrl.Open)
	b := s.open(t, u, "b")
	la, la2 := a.Lock("l"), a.Lock("l2")
	ta, err := la.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	if _, err := la2.Acquire(ctx); err != nil {
		t.Fatalf("acquire: %v", err)
	}
	ctrl.set(frozen)
	c, cancel := context.WithTimeout(ctx, expiry)
	defer cancel()
	lb := b.Lock("l")
	tb, err := lb.Acquire(c)
	if err != nil {
		t.Fatalf("acquire after the holder's session expired: %v", err)
	}
	if tb <= ta {
		t.Errorf("token after the holder expired %d; want > %d", tb, ta)
	}
	// Releasing before the core has noticed: the holding is gone all the
	// same, and Release must say so as it documents.
	if err := la2.Release(ctx); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("Release by a holder whose session expired, before the core noticed: %v; want ErrNotLocked", err)
	}
	ctrl.set(live)
	eventually(t, soon, func() error {
		if !closed(la.Lost()) {
			return errors.New("the expired holder's Lost is not closed")
		}
		return nil
	})
	if la.Held() {
		t.Errorf("the expired holder's Lock says it is held")
	}
	if err := la.Release(ctx); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("Release by the expired holder: %v; want ErrNotLocked", err)
	}
	if err := holderIs(ctx, a, "l", "b", tb); err != nil {
		t.Errorf("after the expired holder's Release: %v", err)
	}
}

func (s *suite) testBreakLock(t *testing.T) {
	if !s.supports(t, BreakLock) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	op := s.open(t, u, "operator")
	if err := op.BreakLock(ctx, "l"); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("breaking a free lock: %v; want ErrNotLocked", err)
	}
	la := a.Lock("l")
	ta, err := la.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	if err := op.BreakLock(ctx, "l"); err != nil {
		t.Fatalf("break: %v", err)
	}
	if m, tok, err := op.LockHolder(ctx, "l"); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("LockHolder right after BreakLock: %q, %d, %v; want ErrNotLocked", m, tok, err)
	}
	eventually(t, soon, func() error {
		if !closed(la.Lost()) {
			return errors.New("the holder of a broken lock is not told: Lost not closed")
		}
		return nil
	})
	lo := op.Lock("l")
	to, err := lo.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("acquire the broken lock: %v", err)
	}
	if to <= ta {
		t.Errorf("token after the break %d; want > %d", to, ta)
	}
	if err := la.Release(ctx); !errors.Is(err, servicegroup.ErrNotLocked) {
		t.Errorf("Release by the holder of a broken lock: %v; want ErrNotLocked", err)
	}
	if err := holderIs(ctx, a, "l", "operator", to); err != nil {
		t.Errorf("after the old holder's Release: %v", err)
	}
}

func (s *suite) testMutualExclusion(t *testing.T) {
	if !s.supports(t, Locks) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	const sessions, goroutines, increments = 3, 4, 25
	// A counter that loses updates unless the lock keeps them apart: the
	// race detector cannot see a distributed lock, so atomics keep it
	// quiet, and the gap between load and store is where updates get lost.
	var counter atomic.Int64
	var mu sync.Mutex // guards tokens only
	var tokens []servicegroup.Token
	var wg sync.WaitGroup
	errs := make(chan error, sessions*goroutines)
	for i := range sessions {
		sg := s.open(t, u, fmt.Sprintf("s%d", i))
		for range goroutines {
			l := sg.Lock("counter")
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range increments {
					tok, err := l.Acquire(ctx)
					if err != nil {
						errs <- err
						return
					}
					v := counter.Load()
					runtime.Gosched()
					counter.Store(v + 1)
					mu.Lock()
					tokens = append(tokens, tok)
					mu.Unlock()
					if err := l.Release(ctx); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("worker: %v", err)
	}
	if got, want := counter.Load(), int64(sessions*goroutines*increments); got != want {
		t.Errorf("count %d; want %d: the lock let holders overlap", got, want)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Errorf("holding %d got token %d after %d; want strictly increasing", i, tokens[i], tokens[i-1])
			break
		}
	}
}
