package servicegroup

import (
	"errors"

	"github.com/musterhq/muster/servicegroup/driver"
)

// The errors every call may return, checked with errors.Is. They are the
// driver's sentinels, so an error from any backend, in-process or through a
// plugin, matches them.
var (
	ErrGroupNotFound = driver.ErrGroupNotFound
	ErrGroupExists   = driver.ErrGroupExists
	ErrGroupNotEmpty = driver.ErrGroupNotEmpty
	ErrMemberExists  = driver.ErrMemberExists
	ErrNotMember     = driver.ErrNotMember
	ErrNotSupported  = driver.ErrNotSupported
	ErrSessionLost   = driver.ErrSessionLost
	ErrClosed        = driver.ErrClosed
	ErrLockHeld      = driver.ErrLockHeld
	ErrNotLocked     = driver.ErrNotLocked
	ErrNoLeader      = driver.ErrNoLeader
	ErrNotLeader     = driver.ErrNotLeader
	ErrInvalidName   = driver.ErrInvalidName
	ErrUnavailable   = driver.ErrUnavailable
)

// ErrStale is returned by a View's reads while it is not in step with the
// backend: no read of the group has succeeded for longer than its
// staleness bound. The error says since when. Unlike the others it never
// comes from a backend.
var ErrStale = errors.New("view is stale")

// ErrNotLinked is returned by Open in ModeInProcess for a backend whose
// package this program does not import.
var ErrNotLinked = errors.New("backend is not linked into this program")

// Token is a fencing token: it strictly increases across successive holders
// of one lock name.
type Token = driver.Token
