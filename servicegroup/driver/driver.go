// Package driver is the service provider interface every muster backend
// implements. One Driver is one session of one member on one backend: the
// unit of liveness. Everything joined or locked through a session lives and
// dies with it.
//
// The public API (package servicegroup) is built on this interface and owns
// everything generic: the heartbeat loop, re-opening lost sessions, watches by
// polling, elections on top of locks. A backend only stores records and
// decides liveness by its own clock.
package driver

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// Options opens one session.
type Options struct {
	// URL is the backend address; its scheme selects the backend
	// (e.g. "file:///var/lib/muster", "memory://test").
	URL string
	// Member is the id this session joins groups and takes locks as.
	Member string
	// Instance identifies the process that owns the session. A process has
	// at most one session per Instance at a time, so opening a session ends
	// every earlier session of the same Instance at once: that is how the
	// ghost session of a killed plugin is cleared before its TTL runs out.
	Instance string
	// OwnerPID is the process that acts on the session's locks and
	// memberships: the host, when a plugin serves the session; 0 means
	// this process. A backend that ends a session as soon as its process
	// is gone (file) watches this one: a killed plugin's host still
	// believes it holds its locks until its own deadline passes.
	OwnerPID int
	// TTL is how long the session lives without a Heartbeat.
	TTL time.Duration
	// DialTimeout bounds Open against an unreachable backend.
	DialTimeout time.Duration
	// Logger receives the backend's diagnostics; nil means none.
	Logger *zap.Logger
}

// Factory opens a session. Backends register one per URL scheme.
type Factory func(ctx context.Context, opts Options) (Driver, error)

// Token is a fencing token: it strictly increases across successive holders
// of one lock name, so a resource can refuse a stale holder's writes.
type Token uint64

// Member is one live member of a group as the backend sees it.
type Member struct {
	ID string
	// Capabilities are msgpack-encoded as tooz stores them; nil when the
	// member has none. See EncodeCapabilities.
	Capabilities []byte
	// UpdatedAt is when the member's session was last renewed, by the
	// backend's clock.
	UpdatedAt time.Time
	// ForcedDown is set by an operator (SetForcedDown) and outlives the
	// member's sessions until cleared.
	ForcedDown bool
}

// LockHolder says who holds a lock.
type LockHolder struct {
	Member string
	Token  Token
	// Session is an opaque id unique to the holding session (unique across
	// restarts of the same member), so two holdings with equal tokens or
	// the same member are never confused. Empty only for records written
	// by another library (e.g. tooz) that carry no session.
	Session string
}

// SessionID is implemented by every Driver: the opaque id its lock
// records carry as LockHolder.Session.
type SessionID interface {
	SessionID() string
}

// Began is implemented by drivers whose Open does slow work before the
// backend session exists (the plugin host starts a process first). It is a
// time no later than the moment the backend began counting the session's
// TTL; the core counts the session's first deadline from it rather than
// from the call to Open, so a slow process start does not eat the TTL.
type Began interface {
	Began() time.Time
}

// Driver is one member's session on one backend. Every method is safe for
// concurrent use. After Close every method but Close and Done returns
// ErrClosed.
type Driver interface {
	// Heartbeat renews the session. It returns ErrSessionLost once the
	// session has expired or was ended by the backend.
	Heartbeat(ctx context.Context) error
	// Close leaves every group and releases every lock at once (not after
	// the TTL). It is idempotent.
	Close(ctx context.Context) error
	// Done is closed when the session has ended: closed, expired, or ended
	// by the backend. The core reacts by opening a new session.
	Done() <-chan struct{}

	// CreateGroup returns ErrGroupExists if the group exists.
	CreateGroup(ctx context.Context, group string) error
	// DeleteGroup returns ErrGroupNotFound or ErrGroupNotEmpty.
	DeleteGroup(ctx context.Context, group string) error
	// Groups lists every group; internal records never appear.
	Groups(ctx context.Context) ([]string, error)

	// Join adds this session's member to group with capabilities caps
	// (msgpack, may be nil). ErrGroupNotFound, ErrMemberExists.
	Join(ctx context.Context, group string, caps []byte) error
	// Leave removes this session's member. ErrGroupNotFound, ErrNotMember.
	Leave(ctx context.Context, group string) error
	// Members lists the live members of group. ErrGroupNotFound.
	Members(ctx context.Context, group string) ([]Member, error)
	// SetCapabilities replaces this member's capabilities in group.
	// ErrGroupNotFound, ErrNotMember.
	SetCapabilities(ctx context.Context, group string, caps []byte) error
	// SetForcedDown marks (or clears) member of group as forced down for
	// every reader, whether or not the member is currently joined.
	// ErrGroupNotFound.
	SetForcedDown(ctx context.Context, group, member string, down bool) error

	// TryLock takes lock name for this session and returns its fencing
	// token, or ErrLockHeld if anyone holds it (this session included:
	// locks are not re-entrant).
	TryLock(ctx context.Context, name string) (Token, error)
	// Unlock releases the lock if this session holds it with token;
	// otherwise ErrNotLocked, and nothing is freed. Through a session that
	// has ended it returns ErrSessionLost (it may match ErrNotLocked too).
	Unlock(ctx context.Context, name string, token Token) error
	// LockHolder says who holds name; ErrNotLocked when nobody does.
	LockHolder(ctx context.Context, name string) (LockHolder, error)
	// BreakLock frees name whoever holds it (an operator's action);
	// ErrNotLocked when nobody does.
	BreakLock(ctx context.Context, name string) error
}

// Optional capabilities. The core finds them by type assertion and falls
// back to a generic implementation when a backend lacks one.

// EventType says what happened to a member.
type EventType int

// Membership event types.
const (
	Joined EventType = iota + 1
	Left
	// Updated: a member's capabilities or its forced-down mark changed. A
	// backend may also send it for a mark set on a member not joined, or
	// with no Member when it cannot tell whose record changed: the core
	// re-reads the group on every event and reports only what differs.
	Updated
)

// Event is one membership change seen by a native watch.
type Event struct {
	Type   EventType
	Group  string
	Member string
}

// Watcher is implemented by backends with native change streams
// (ZooKeeper watches, etcd watch). The channel is closed when ctx ends or
// the stream fails; errc then carries the reason (nil after ctx ended).
type Watcher interface {
	Watch(ctx context.Context, group string) (events <-chan Event, errc <-chan error, err error)
}

// MemberGetter is implemented by backends that read one member's record
// directly, so IsUp and UpdatedAt cost one read, not a listing of the
// group. ErrGroupNotFound, or ErrNotMember when member is not live.
type MemberGetter interface {
	Member(ctx context.Context, group, member string) (Member, error)
}

// StateLister is implemented by backends whose Members and Member pay
// extra reads for UpdatedAt alone (etcd: a lease TimeToLive per renewed
// member; ZooKeeper: each owner's session record), or that list a group
// cheaper without it (Redis: without a script). MemberStates lists what
// Members lists, with the same capabilities and marks, but UpdatedAt may be
// zero: what a watch's diff reads every WatchInterval, which compares
// capabilities and marks only, and what GetAll reads. MemberState is
// MemberGetter's Member likewise, for IsUp; a StateLister is a
// MemberGetter.
type StateLister interface {
	MemberGetter
	MemberStates(ctx context.Context, group string) ([]Member, error)
	MemberState(ctx context.Context, group, member string) (Member, error)
}

// KnownMember is a member a backend still holds a record of, live or not.
type KnownMember struct {
	Member
	// Live is false for a record whose session has ended (expired, or its
	// process gone) and for a forced-down mark on a name with no record.
	// UpdatedAt is then the last renewal the backend still knows of (the
	// member's "last seen"), or zero when it no longer holds one.
	Live bool
}

// KnownMemberLister is implemented by backends that keep a member's record
// for a while after its session has ended, until the backend cleans it up
// (a reader that prunes it, a sweep, a janitor), so an operator can tell a
// dead host from a name that never joined. KnownMembers lists the live
// members as Members would (Live set), the records of dead ones still held
// (Live unset), and forced-down marks on names with no record at all
// (Live unset, ForcedDown set). It removes nothing: listing what is dead
// must not hasten its cleanup. A member that left has no record. Backends
// whose records vanish with their sessions (leases, ephemeral nodes) do not
// implement it. ErrGroupNotFound.
type KnownMemberLister interface {
	KnownMembers(ctx context.Context, group string) ([]KnownMember, error)
}

// LockWaiter is implemented by backends that can block on a lock natively.
// Lock returns ctx.Err() when ctx ends first.
type LockWaiter interface {
	Lock(ctx context.Context, name string) (Token, error)
}
