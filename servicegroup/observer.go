package servicegroup

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/musterhq/muster/servicegroup/driver"
)

// Observer is told what the core does, for metrics (package
// servicegroup/metrics implements it on Prometheus). Its methods are called
// synchronously, some under the core's locks: they must be quick, must not
// block and must not call back into the ServiceGroup. One Observer may
// serve many ServiceGroups. Config.Observer nil observes nothing and costs
// nothing.
type Observer interface {
	// SessionState says a session moved from one state to another; from
	// is "" for a new ServiceGroup, to is "" once it is closed.
	SessionState(from, to SessionState)
	// Heartbeat reports one heartbeat's round trip and its error.
	Heartbeat(took time.Duration, err error)
	// SessionReopened says a lost session was replaced by a new one, and
	// why the old one was lost.
	SessionReopened(why LossReason)
	// BackendCall reports one call to the backend's session (op is the
	// SPI method in snake case: "join", "members", "try_lock", ...).
	BackendCall(op string, took time.Duration, outcome Outcome)
	// LockHeld says a lock (not an election) was taken (held) or given up;
	// lost is set when it was lost rather than released.
	LockHeld(held, lost bool)
	// Leadership says this member won (held) or gave up leadership of
	// group; lost is set when it was lost rather than resigned.
	Leadership(group string, held, lost bool)
	// PluginProcess says a plugin process started (restart: not the first
	// for this ServiceGroup) or exited (lost: without Close).
	PluginProcess(plugin string, started, restart, lost bool)
}

// SessionState is the state of a ServiceGroup's session, as the core sees
// it.
type SessionState string

// Session states.
const (
	// SessionUp: the session is live and heartbeating.
	SessionUp SessionState = "up"
	// SessionLost: the session was lost and a new one is being opened.
	SessionLost SessionState = "lost"
)

// LossReason says, in a bounded vocabulary, why a session was lost.
type LossReason string

// Loss reasons.
const (
	// LossBackendEnded: the backend ended the session (expiry it noticed,
	// a dead or unhealthy plugin, a flushed record).
	LossBackendEnded LossReason = "backend_ended"
	// LossDeadline: no heartbeat succeeded before the session's local
	// deadline.
	LossDeadline LossReason = "deadline"
	// LossRefused: a heartbeat or call was refused with ErrSessionLost.
	LossRefused LossReason = "refused"
)

// Outcome classifies a backend call's result, in a bounded vocabulary.
type Outcome string

// Call outcomes.
const (
	// OutcomeOK: the call succeeded.
	OutcomeOK Outcome = "ok"
	// OutcomeAnswer: the backend answered with a domain error (group not
	// found, lock held, not locked, member exists, ...).
	OutcomeAnswer Outcome = "answer"
	// OutcomeSessionLost: the session was lost or closed.
	OutcomeSessionLost Outcome = "session_lost"
	// OutcomeTimeout: the call's context ended first.
	OutcomeTimeout Outcome = "timeout"
	// OutcomeError: any other failure (the backend unreachable, ...).
	OutcomeError Outcome = "error"
)

// OutcomeOf classifies err.
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeOK
	case lostSession(err):
		return OutcomeSessionLost
	case errorsIsCtx(err):
		return OutcomeTimeout
	}
	for _, answer := range []error{driver.ErrGroupNotFound, driver.ErrGroupExists, driver.ErrGroupNotEmpty,
		driver.ErrMemberExists, driver.ErrNotMember, driver.ErrLockHeld, driver.ErrNoLeader,
		driver.ErrNotLocked, driver.ErrInvalidName, driver.ErrNotSupported} {
		if errors.Is(err, answer) {
			return OutcomeAnswer
		}
	}
	return OutcomeError
}

// lossReason classifies the reason kill was given.
func lossReason(why string) LossReason {
	switch {
	case why == whyBackendEnded:
		return LossBackendEnded
	case strings.Contains(why, "deadline"):
		return LossDeadline
	}
	return LossRefused
}

const whyBackendEnded = "backend ended the session"

// setState records the session's state; s.mu must be held.
func (s *ServiceGroup) setState(to SessionState) {
	if s.cfg.Observer == nil || s.state == to {
		return
	}
	s.cfg.Observer.SessionState(s.state, to)
	s.state = to
}

// observeLock reports a holding of the lock called name taken or ended.
func (s *ServiceGroup) observeLock(name string, held, lost bool) {
	o := s.cfg.Observer
	if o == nil {
		return
	}
	if g, ok := strings.CutPrefix(name, driver.ElectionLock("")); ok {
		o.Leadership(g, held, lost)
		return
	}
	o.LockHeld(held, lost)
}

// observed wraps d so that the Observer times every call, keeping exactly
// the optional interfaces the core looks for (Watcher, LockWaiter,
// MemberGetter); SessionID and Began are read from d itself before.
func observed(d driver.Driver, o Observer) driver.Driver {
	if o == nil {
		return d
	}
	b := &timedDriver{Driver: d, o: o}
	w, isW := d.(driver.Watcher)
	l, isL := d.(driver.LockWaiter)
	g, isG := d.(driver.MemberGetter)
	tw, tl, tg := timedWatcher{w, o}, timedWaiter{l, o}, timedGetter{g, o}
	switch {
	case isW && isL && isG:
		return &struct {
			*timedDriver
			timedWatcher
			timedWaiter
			timedGetter
		}{b, tw, tl, tg}
	case isW && isL:
		return &struct {
			*timedDriver
			timedWatcher
			timedWaiter
		}{b, tw, tl}
	case isW && isG:
		return &struct {
			*timedDriver
			timedWatcher
			timedGetter
		}{b, tw, tg}
	case isL && isG:
		return &struct {
			*timedDriver
			timedWaiter
			timedGetter
		}{b, tl, tg}
	case isW:
		return &struct {
			*timedDriver
			timedWatcher
		}{b, tw}
	case isL:
		return &struct {
			*timedDriver
			timedWaiter
		}{b, tl}
	case isG:
		return &struct {
			*timedDriver
			timedGetter
		}{b, tg}
	}
	return b
}

func observeCall(o Observer, op string, start time.Time, err error) {
	o.BackendCall(op, time.Since(start), OutcomeOf(err))
}

// timedDriver times the SPI's methods. Heartbeat is timed by the keeper,
// which reports it as a heartbeat too.
type timedDriver struct {
	driver.Driver
	o Observer
}

func (t *timedDriver) Close(ctx context.Context) error {
	start := time.Now()
	err := t.Driver.Close(ctx)
	observeCall(t.o, "close", start, err)
	return err
}

func (t *timedDriver) CreateGroup(ctx context.Context, group string) error {
	start := time.Now()
	err := t.Driver.CreateGroup(ctx, group)
	observeCall(t.o, "create_group", start, err)
	return err
}

func (t *timedDriver) DeleteGroup(ctx context.Context, group string) error {
	start := time.Now()
	err := t.Driver.DeleteGroup(ctx, group)
	observeCall(t.o, "delete_group", start, err)
	return err
}

func (t *timedDriver) Groups(ctx context.Context) ([]string, error) {
	start := time.Now()
	gs, err := t.Driver.Groups(ctx)
	observeCall(t.o, "groups", start, err)
	return gs, err
}

func (t *timedDriver) Join(ctx context.Context, group string, caps []byte) error {
	start := time.Now()
	err := t.Driver.Join(ctx, group, caps)
	observeCall(t.o, "join", start, err)
	return err
}

func (t *timedDriver) Leave(ctx context.Context, group string) error {
	start := time.Now()
	err := t.Driver.Leave(ctx, group)
	observeCall(t.o, "leave", start, err)
	return err
}

func (t *timedDriver) Members(ctx context.Context, group string) ([]driver.Member, error) {
	start := time.Now()
	ms, err := t.Driver.Members(ctx, group)
	observeCall(t.o, "members", start, err)
	return ms, err
}

func (t *timedDriver) SetCapabilities(ctx context.Context, group string, caps []byte) error {
	start := time.Now()
	err := t.Driver.SetCapabilities(ctx, group, caps)
	observeCall(t.o, "set_capabilities", start, err)
	return err
}

func (t *timedDriver) SetForcedDown(ctx context.Context, group, member string, down bool) error {
	start := time.Now()
	err := t.Driver.SetForcedDown(ctx, group, member, down)
	observeCall(t.o, "set_forced_down", start, err)
	return err
}

func (t *timedDriver) TryLock(ctx context.Context, name string) (driver.Token, error) {
	start := time.Now()
	tok, err := t.Driver.TryLock(ctx, name)
	observeCall(t.o, "try_lock", start, err)
	return tok, err
}

func (t *timedDriver) Unlock(ctx context.Context, name string, token driver.Token) error {
	start := time.Now()
	err := t.Driver.Unlock(ctx, name, token)
	observeCall(t.o, "unlock", start, err)
	return err
}

func (t *timedDriver) LockHolder(ctx context.Context, name string) (driver.LockHolder, error) {
	start := time.Now()
	h, err := t.Driver.LockHolder(ctx, name)
	observeCall(t.o, "lock_holder", start, err)
	return h, err
}

func (t *timedDriver) BreakLock(ctx context.Context, name string) error {
	start := time.Now()
	err := t.Driver.BreakLock(ctx, name)
	observeCall(t.o, "break_lock", start, err)
	return err
}

type timedWatcher struct {
	w driver.Watcher
	o Observer
}

// Watch times opening the native watch (not the stream's life).
func (t timedWatcher) Watch(ctx context.Context, group string) (<-chan driver.Event, <-chan error, error) {
	start := time.Now()
	ev, errc, err := t.w.Watch(ctx, group)
	observeCall(t.o, "watch", start, err)
	return ev, errc, err
}

type timedWaiter struct {
	l driver.LockWaiter
	o Observer
}

// Lock times a blocking wait for a lock, the wait included.
func (t timedWaiter) Lock(ctx context.Context, name string) (driver.Token, error) {
	start := time.Now()
	tok, err := t.l.Lock(ctx, name)
	observeCall(t.o, "lock", start, err)
	return tok, err
}

type timedGetter struct {
	g driver.MemberGetter
	o Observer
}

// Member times reading one member.
func (t timedGetter) Member(ctx context.Context, group, member string) (driver.Member, error) {
	start := time.Now()
	m, err := t.g.Member(ctx, group, member)
	observeCall(t.o, "member", start, err)
	return m, err
}
