package servicegroup

import (
	"context"
	"errors"
	"fmt"

	"github.com/musterhq/muster/servicegroup/driver"
)

// Leadership is this member's leadership of a group, won by Campaign.
type Leadership struct {
	group string
	lock  *Lock
}

// Campaign waits until this member leads group, or ctx ends (ctx.Err()).
// The election is a lock per group (a reserved name that never shows up as a
// group or member), so exactly one candidate leads at a time and each term
// has a larger fencing token. The group need not exist.
func (s *ServiceGroup) Campaign(ctx context.Context, group string) (*Leadership, error) {
	if err := validGroup(group); err != nil {
		return nil, err
	}
	l := s.Lock(driver.ElectionLock(group))
	if _, err := l.acquire(ctx); err != nil {
		return nil, err
	}
	return &Leadership{group: group, lock: l}, nil
}

// Group is the group led.
func (e *Leadership) Group() string { return e.group }

// Token is the fencing token of this term.
func (e *Leadership) Token() Token { return e.lock.Token() }

// Lost is closed when leadership is lost without Resign: the session was
// lost or closed, or an operator broke the election lock.
func (e *Leadership) Lost() <-chan struct{} { return e.lock.Lost() }

// Resign gives up leadership; another candidate is elected.
// ErrNotLeader if it was already lost or resigned.
func (e *Leadership) Resign(ctx context.Context) error {
	err := e.lock.Release(ctx)
	if errors.Is(err, driver.ErrNotLocked) {
		return fmt.Errorf("servicegroup: resign %q: %w", e.group, driver.ErrNotLeader)
	}
	return err
}

// Leader returns the member leading group; ErrNoLeader when nobody leads.
func (s *ServiceGroup) Leader(ctx context.Context, group string) (string, error) {
	if err := validGroup(group); err != nil {
		return "", err
	}
	var h driver.LockHolder
	err := s.do(ctx, func(d driver.Driver) (err error) {
		h, err = d.LockHolder(ctx, driver.ElectionLock(group))
		return err
	})
	if errors.Is(err, driver.ErrNotLocked) {
		return "", fmt.Errorf("servicegroup: leader of %q: %w", group, driver.ErrNoLeader)
	}
	return h.Member, err
}
