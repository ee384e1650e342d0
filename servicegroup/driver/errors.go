package driver

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Backends return them wrapped in an *OpError; callers test
// with errors.Is.
var (
	ErrGroupNotFound = errors.New("group not found")
	ErrGroupExists   = errors.New("group already exists")
	ErrGroupNotEmpty = errors.New("group not empty")
	ErrMemberExists  = errors.New("member already joined")
	ErrNotMember     = errors.New("not a member")
	ErrNotSupported  = errors.New("not supported by this backend")
	ErrSessionLost   = errors.New("session lost")
	ErrClosed        = errors.New("session closed")
	ErrLockHeld      = errors.New("lock held")
	ErrNotLocked     = errors.New("lock not held")
	ErrNoLeader      = errors.New("no leader")
	ErrNotLeader     = errors.New("not the leader")
	ErrInvalidName   = errors.New("invalid name")
	ErrUnavailable   = errors.New("backend unavailable")
	// ErrUnimplemented is returned by a driver that has an optional
	// interface's method whatever it fronts (the plugin host's session)
	// when what it fronts lacks that interface. The core treats it as the
	// interface missing and falls back; it never reaches a caller. Unlike
	// ErrNotSupported, it says nothing about the backend's abilities.
	ErrUnimplemented = errors.New("optional interface not implemented")
)

// OpError says which backend operation failed, on what, and why:
// `file: join "compute": group not found`.
type OpError struct {
	Backend string // "file", "redis", ...
	Op      string // "join", "lock", ...
	Name    string // the group, member or lock concerned; may be empty
	Err     error
}

func (e *OpError) Error() string {
	s := e.Backend + ": " + e.Op
	if e.Name != "" {
		s += " " + strconv.Quote(e.Name)
	}
	return s + ": " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }

// Errorf wraps err as an *OpError unless it already is one.
func Errorf(backend, op, name string, err error) error {
	if err == nil {
		return nil
	}
	var oe *OpError
	if errors.As(err, &oe) {
		return err
	}
	return &OpError{Backend: backend, Op: op, Name: name, Err: err}
}

// Unavailable reports that a backend at addr could not be reached.
func Unavailable(backend, addr string, cause error) error {
	return &OpError{Backend: backend, Op: "open", Name: addr,
		Err: fmt.Errorf("%w: %v", ErrUnavailable, cause)}
}
