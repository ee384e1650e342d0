package servicegroup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/musterhq/muster/servicegroup/driver"
)

// Lock is a distributed lock held through this session. Locks are not
// re-entrant: two Lock values of one name exclude each other even on one
// session. A lock lives and dies with the session: if the session is lost
// (expired, plugin died, Close) or an operator breaks the lock, Lost fires
// and a later holder gets a larger fencing token.
type Lock struct {
	sg   *ServiceGroup
	name string

	mu    sync.Mutex
	held  bool
	token Token
	drv   driver.Driver // the session that holds it
	lost  chan struct{}
}

// Lock returns the lock called name. Nothing is taken until Acquire.
func (s *ServiceGroup) Lock(name string) *Lock {
	return &Lock{sg: s, name: name}
}

// Name is the lock's name.
func (l *Lock) Name() string { return l.name }

func (l *Lock) validate() error {
	if err := driver.ValidateLockName(l.name); err != nil {
		return fmt.Errorf("servicegroup: %w", err)
	}
	return nil
}

// TryAcquire takes the lock if it is free and returns its fencing token;
// ErrLockHeld if anyone (this session included) holds it.
func (l *Lock) TryAcquire(ctx context.Context) (Token, error) {
	if err := l.validate(); err != nil {
		return 0, err
	}
	return l.try(ctx)
}

func (l *Lock) try(ctx context.Context) (Token, error) {
	l.mu.Lock()
	if l.held {
		l.mu.Unlock()
		return 0, fmt.Errorf("servicegroup: lock %q: %w (by this Lock)", l.name, driver.ErrLockHeld)
	}
	l.mu.Unlock()
	var tok Token
	var holder driver.Driver
	err := l.sg.do(ctx, func(d driver.Driver) (err error) {
		tok, err = d.TryLock(ctx, l.name)
		holder = d
		return err
	})
	if err != nil {
		return 0, err
	}
	l.acquired(holder, tok)
	return tok, nil
}

func (l *Lock) acquired(d driver.Driver, tok Token) {
	l.mu.Lock()
	l.held, l.token, l.drv, l.lost = true, tok, d, make(chan struct{})
	l.mu.Unlock()
	s := l.sg
	s.mu.Lock()
	if s.drv == d && !s.closed {
		s.locks[l] = struct{}{}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	l.markLost(d) // the session ended while we were taking it
}

// Acquire waits until the lock is taken or ctx ends (then ctx.Err(), e.g.
// context.DeadlineExceeded). It returns the fencing token.
func (l *Lock) Acquire(ctx context.Context) (Token, error) {
	if err := l.validate(); err != nil {
		return 0, err
	}
	return l.acquire(ctx)
}

func (l *Lock) acquire(ctx context.Context) (Token, error) {
	d, _, err := l.sg.session()
	if err != nil {
		return 0, err
	}
	if w, ok := d.(driver.LockWaiter); ok {
		tok, err := w.Lock(ctx, l.name)
		if err == nil {
			l.acquired(d, tok)
			return tok, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if !errors.Is(err, driver.ErrNotSupported) {
			return 0, err
		}
	}
	// Poll with backoff, capped so a freed lock is noticed quickly.
	wait, maxWait := 5*time.Millisecond, min(l.sg.cfg.HeartbeatInterval/4, 200*time.Millisecond)
	for {
		tok, err := l.try(ctx)
		if err == nil {
			return tok, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if !errors.Is(err, driver.ErrLockHeld) && !errors.Is(err, driver.ErrSessionLost) {
			return 0, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, maxWait)
	}
}

// Release frees the lock. ErrNotLocked if this Lock does not hold it (never
// taken, released, or lost: then another may hold it, and nothing is freed).
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	held, tok, d := l.held, l.token, l.drv
	l.mu.Unlock()
	if !held {
		return fmt.Errorf("servicegroup: release %q: %w (not held by this Lock)", l.name, driver.ErrNotLocked)
	}
	l.mu.Lock()
	if l.held && l.drv == d && l.token == tok {
		l.held = false
	}
	l.mu.Unlock()
	s := l.sg
	s.mu.Lock()
	delete(s.locks, l)
	s.mu.Unlock()
	err := d.Unlock(ctx, l.name, tok)
	if errors.Is(err, driver.ErrSessionLost) || errors.Is(err, driver.ErrClosed) {
		// The session ended before the keeper noticed: the lock went with it.
		if !errors.Is(err, driver.ErrNotLocked) {
			err = fmt.Errorf("servicegroup: release %q: %w (%w)", l.name, driver.ErrNotLocked, err)
		}
	}
	return err
}

// Token is the fencing token of the current holding, 0 when not held.
func (l *Lock) Token() Token {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return 0
	}
	return l.token
}

// Held reports whether this Lock holds the lock, as far as it knows.
func (l *Lock) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// Lost returns a channel closed when the current holding is lost: the
// session expired or was closed, the plugin died, or an operator broke the
// lock. Release does not close it. Before the first Acquire it returns nil.
func (l *Lock) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

func (l *Lock) heldToken() (Token, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.token, l.held
}

// markLost ends a holding taken through session d.
func (l *Lock) markLost(d driver.Driver) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held && l.drv == d {
		l.held = false
		close(l.lost)
	}
}

// BreakLock frees the lock called name whoever holds it (an operator's
// action); its holder's Lost fires. ErrNotLocked if nobody holds it.
func (s *ServiceGroup) BreakLock(ctx context.Context, name string) error {
	if err := driver.ValidateLockName(name); err != nil {
		return fmt.Errorf("servicegroup: %w", err)
	}
	return s.do(ctx, func(d driver.Driver) error { return d.BreakLock(ctx, name) })
}

// LockHolder says which member holds the lock called name and with which
// token; ErrNotLocked if nobody does.
func (s *ServiceGroup) LockHolder(ctx context.Context, name string) (string, Token, error) {
	if err := driver.ValidateLockName(name); err != nil {
		return "", 0, fmt.Errorf("servicegroup: %w", err)
	}
	var h driver.LockHolder
	err := s.do(ctx, func(d driver.Driver) (err error) {
		h, err = d.LockHolder(ctx, name)
		return err
	})
	return h.Member, h.Token, err
}
