package servicegroup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

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
	// sem serializes TryAcquire and Release on this Lock, including their
	// background resolution when a caller gives up mid-call.
	sem chan struct{}

	mu    sync.Mutex
	held  bool
	token Token
	ep    *epoch // the session that holds it
	lost  chan struct{}
	// releasing: a Release of the holding is under way (or completing in
	// the background). The backend may free the lock, and another session
	// take it, before the answer is back, so Held says false meanwhile.
	releasing bool
}

// Lock returns the lock called name. Nothing is taken until Acquire.
func (s *ServiceGroup) Lock(name string) *Lock {
	return &Lock{sg: s, name: name, sem: make(chan struct{}, 1)}
}

// Name is the lock's name.
func (l *Lock) Name() string { return l.name }

func (l *Lock) validate() error {
	if err := driver.ValidateLockName(l.name); err != nil {
		return fmt.Errorf("servicegroup: %w", err)
	}
	return nil
}

func (l *Lock) enter(ctx context.Context) (release func(), err error) {
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TryAcquire takes the lock if it is free and returns its fencing token;
// ErrLockHeld if anyone (this session included) holds it.
//
// If ctx ends while the backend is still taking the lock, TryAcquire
// returns ctx.Err() at once and the lock, if it was taken, is released in
// the background: a cancelled call never leaves a lock that nobody holds.
func (l *Lock) TryAcquire(ctx context.Context) (Token, error) {
	if err := l.validate(); err != nil {
		return 0, err
	}
	return l.try(ctx)
}

func (l *Lock) try(ctx context.Context) (Token, error) {
	tok, err := l.tryOn(ctx)
	if lostSession(err) && !errorsIsCtx(err) {
		// Taken (or not) on a session that died meanwhile: it went with it.
		tok, err = l.tryOn(ctx)
	}
	return tok, err
}

func (l *Lock) tryOn(ctx context.Context) (Token, error) {
	release, err := l.enter(ctx)
	if err != nil {
		return 0, err
	}
	if l.Held() {
		release()
		return 0, fmt.Errorf("servicegroup: lock %q: %w (by this Lock)", l.name, driver.ErrLockHeld)
	}
	e, err := l.sg.live(ctx)
	if err != nil {
		release()
		return 0, err
	}
	var tok Token // written by the call; read only once its result is in
	err = l.sg.settle(ctx,
		func(c context.Context) (err error) {
			tok, err = e.drv.TryLock(c, l.name)
			return err
		},
		func(err error, abandoned bool) error {
			defer release()
			if lostSession(err) {
				l.sg.kill(e, err.Error())
				return err
			}
			if err != nil {
				return err
			}
			if abandoned || !l.acquired(e, tok) {
				l.undo(e, tok)
				return fmt.Errorf("servicegroup: lock %q: %w (the session ended while taking it)", l.name, driver.ErrSessionLost)
			}
			return nil
		})
	if err != nil {
		return 0, err
	}
	return tok, nil
}

// undo releases a holding nobody will track (its caller gave up, or its
// session died while it was taken), in the background.
func (l *Lock) undo(e *epoch, tok Token) {
	l.sg.background(func(ctx context.Context) {
		if err := e.drv.Unlock(ctx, l.name, tok); err != nil && !lostSession(err) && !errors.Is(err, driver.ErrNotLocked) {
			l.sg.log.Warn("releasing an abandoned lock failed; it is freed when the session ends",
				zap.String("lock", l.name), zap.Error(err))
		}
	})
}

// acquired files the holding of token tok through e, unless e is dead (or
// past its deadline) or the ServiceGroup is closed. It reports whether it
// did.
func (l *Lock) acquired(e *epoch, tok Token) bool {
	s := l.sg
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.dead || e.expired() || s.closed {
		return false
	}
	l.mu.Lock()
	l.held, l.token, l.ep, l.lost = true, tok, e, make(chan struct{})
	l.mu.Unlock()
	e.locks[l] = tok
	s.observeLock(l.name, true, false)
	return true
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
	e, err := l.sg.live(ctx)
	if err != nil {
		return 0, err
	}
	if w, ok := e.drv.(driver.LockWaiter); ok && !l.Held() {
		tok, err := w.Lock(ctx, l.name)
		switch {
		case err == nil && l.acquired(e, tok):
			return tok, nil
		case err == nil:
			l.undo(e, tok)
			// The session died while waiting: wait again on the next one.
		case ctx.Err() != nil:
			l.resolve(e)
			return 0, ctx.Err()
		case !errors.Is(err, driver.ErrNotSupported) && !lostSession(err) && !transient(err):
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
		if !errors.Is(err, driver.ErrLockHeld) && !lostSession(err) && !transient(err) {
			return 0, err
		}
		if transient(err) {
			l.sg.log.Debug("lock: acquire: a try failed; trying again", zap.String("lock", l.name), zap.Error(err))
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

// transient says err is worth another try by a caller who waits: the
// backend was unreachable, or one call outlived its own bound (the dial
// timeout) while the caller's context lives on. A grant such a call got
// anyway is undone by settle, so trying again is safe.
func transient(err error) bool {
	return errors.Is(err, driver.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// resolve settles a native wait that ctx cut short: if the backend says
// this session holds the lock anyway (the grant crossed the cancellation)
// and no Lock tracks that holding, it is released.
func (l *Lock) resolve(e *epoch) {
	if e.id == "" {
		return
	}
	l.sg.background(func(ctx context.Context) {
		h, err := e.drv.LockHolder(ctx, l.name)
		if err != nil || h.Session != e.id {
			return
		}
		l.sg.mu.Lock()
		tracked := false
		for other, tok := range e.locks {
			if other.name == l.name && tok == h.Token {
				tracked = true
			}
		}
		l.sg.mu.Unlock()
		if !tracked {
			_ = e.drv.Unlock(ctx, l.name, h.Token)
		}
	})
}

// Release frees the lock. ErrNotLocked if this Lock does not hold it (never
// taken, released, or lost: then another may hold it, and nothing is freed).
// The holding is kept until the backend confirms the release, so a release
// that failed (a timeout, an unreachable backend) can be retried; if ctx
// ends first the release completes in the background.
func (l *Lock) Release(ctx context.Context) error {
	release, err := l.enter(ctx)
	if err != nil {
		return err
	}
	l.mu.Lock()
	held, tok, e := l.held, l.token, l.ep
	if held && !e.expired() {
		l.releasing = true
	}
	l.mu.Unlock()
	if !held || e.expired() {
		release()
		return fmt.Errorf("servicegroup: release %q: %w (not held by this Lock)", l.name, driver.ErrNotLocked)
	}
	return l.sg.settle(ctx,
		func(c context.Context) error { return e.drv.Unlock(c, l.name, tok) },
		func(err error, _ bool) error {
			defer release()
			defer l.released()
			switch {
			case err == nil:
				l.drop(e, tok, false)
				return nil
			case lostSession(err):
				// The session ended before the keeper noticed: the lock
				// went with it.
				l.sg.kill(e, err.Error())
				if !errors.Is(err, driver.ErrNotLocked) {
					err = fmt.Errorf("servicegroup: release %q: %w (%w)", l.name, driver.ErrNotLocked, err)
				}
				return err
			case errors.Is(err, driver.ErrNotLocked):
				// Broken or expired behind our back: it was lost.
				l.drop(e, tok, true)
				return err
			default:
				return err // still held: retry
			}
		})
}

// released ends a Release: whatever holding is left (it failed) counts as
// held again.
func (l *Lock) released() {
	l.mu.Lock()
	l.releasing = false
	l.mu.Unlock()
}

// drop forgets the holding (e, tok), telling Lost when it was lost.
func (l *Lock) drop(e *epoch, tok Token, lost bool) {
	s := l.sg
	s.mu.Lock()
	if cur, ok := e.locks[l]; ok && cur == tok {
		delete(e.locks, l)
	}
	s.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held && l.ep == e && l.token == tok {
		l.held = false
		s.observeLock(l.name, false, lost) // before Lost fires: a reader sees it counted
		if lost {
			close(l.lost)
		}
	}
}

// Token is the fencing token of the current holding, 0 when not held.
func (l *Lock) Token() Token {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.holding() {
		return 0
	}
	return l.token
}

// holding is Held with l.mu held.
func (l *Lock) holding() bool { return l.held && !l.releasing && !l.ep.expired() }

// Held reports whether this Lock holds the lock, as far as it knows. It
// turns false at the session's local deadline (the last heartbeat's send
// time + member TTL − a safety margin, see lossMargin), before the backend
// can hand the lock to anyone else, even while the network is silent. It is
// false from the moment Release is called until the release has failed
// (then the lock is still held, and Release can be retried): the backend
// may free the lock before its answer is back.
func (l *Lock) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holding()
}

// Lost returns a channel closed when the current holding is lost: the
// session expired (by its local deadline) or was closed, the plugin died,
// or an operator broke the lock. Release does not close it. Before the
// first Acquire it returns nil.
func (l *Lock) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// markLost ends the holding of token tok through session e; a newer
// holding of the same Lock is left alone.
func (l *Lock) markLost(e *epoch, tok Token) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held && l.ep == e && l.token == tok {
		l.held = false
		l.sg.observeLock(l.name, false, true) // before Lost fires: a reader sees it counted
		close(l.lost)
	}
}

// BreakLock frees the lock called name whoever holds it (an operator's
// action); its holder's Lost fires. ErrNotLocked if nobody holds it.
func (s *ServiceGroup) BreakLock(ctx context.Context, name string) error {
	if err := driver.ValidateLockName(name); err != nil {
		return fmt.Errorf("servicegroup: %w", err)
	}
	return s.doOnce(ctx, func(d driver.Driver) error { return d.BreakLock(ctx, name) }, driver.ErrNotLocked)
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
