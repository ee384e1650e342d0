package proto

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/musterhq/muster/servicegroup/driver"
)

// sentinels maps every ErrorKind to the error it stands for. Order matters
// only for KindOf: the first match wins.
var sentinels = []struct {
	kind ErrorKind
	err  error
	code codes.Code
}{
	{ErrorKind_ERROR_KIND_GROUP_NOT_FOUND, driver.ErrGroupNotFound, codes.NotFound},
	{ErrorKind_ERROR_KIND_GROUP_EXISTS, driver.ErrGroupExists, codes.AlreadyExists},
	{ErrorKind_ERROR_KIND_GROUP_NOT_EMPTY, driver.ErrGroupNotEmpty, codes.FailedPrecondition},
	{ErrorKind_ERROR_KIND_MEMBER_EXISTS, driver.ErrMemberExists, codes.AlreadyExists},
	{ErrorKind_ERROR_KIND_NOT_MEMBER, driver.ErrNotMember, codes.FailedPrecondition},
	{ErrorKind_ERROR_KIND_NOT_SUPPORTED, driver.ErrNotSupported, codes.Unimplemented},
	{ErrorKind_ERROR_KIND_SESSION_LOST, driver.ErrSessionLost, codes.Aborted},
	{ErrorKind_ERROR_KIND_CLOSED, driver.ErrClosed, codes.FailedPrecondition},
	{ErrorKind_ERROR_KIND_LOCK_HELD, driver.ErrLockHeld, codes.Aborted},
	{ErrorKind_ERROR_KIND_NOT_LOCKED, driver.ErrNotLocked, codes.FailedPrecondition},
	{ErrorKind_ERROR_KIND_NO_LEADER, driver.ErrNoLeader, codes.NotFound},
	{ErrorKind_ERROR_KIND_NOT_LEADER, driver.ErrNotLeader, codes.FailedPrecondition},
	{ErrorKind_ERROR_KIND_INVALID_NAME, driver.ErrInvalidName, codes.InvalidArgument},
	{ErrorKind_ERROR_KIND_UNAVAILABLE, driver.ErrUnavailable, codes.Unavailable},
	{ErrorKind_ERROR_KIND_CANCELED, context.Canceled, codes.Canceled},
	{ErrorKind_ERROR_KIND_DEADLINE_EXCEEDED, context.DeadlineExceeded, codes.DeadlineExceeded},
}

// KindOf returns the kind of the sentinel err wraps, or
// ERROR_KIND_UNSPECIFIED.
func KindOf(err error) ErrorKind {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.kind
		}
	}
	return ErrorKind_ERROR_KIND_UNSPECIFIED
}

// KindsOf returns every kind whose sentinel err wraps, in table order: an
// error may be two things at once (a lost session's "not member").
func KindsOf(err error) []ErrorKind {
	var kinds []ErrorKind
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			kinds = append(kinds, s.kind)
		}
	}
	return kinds
}

// Sentinel returns the error kind stands for, or nil for
// ERROR_KIND_UNSPECIFIED and unknown kinds.
func (k ErrorKind) Sentinel() error {
	for _, s := range sentinels {
		if s.kind == k {
			return s.err
		}
	}
	return nil
}

func (k ErrorKind) code() codes.Code {
	for _, s := range sentinels {
		if s.kind == k {
			return s.code
		}
	}
	return codes.Unknown
}

// ToStatus turns a driver error into a gRPC status error carrying an *Error
// detail, for a plugin to return. Nil stays nil.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	detail := ToError(err)
	st := status.New(detail.GetKind().code(), detail.GetMessage())
	if withDetail, derr := st.WithDetails(detail); derr == nil {
		st = withDetail
	}
	return st.Err()
}

// ToError describes a driver error for the wire (nil stays nil); Err
// rebuilds it on the other side.
func ToError(err error) *Error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	e := &Error{Kind: KindOf(err), Kinds: KindsOf(err), Message: msg}
	var oe *driver.OpError
	if errors.As(err, &oe) && oe.Err != nil && oe.Error() == msg {
		e.Op = &OpError{Backend: oe.Backend, Op: oe.Op, Name: oe.Name, Message: oe.Err.Error()}
	}
	return e
}

// FromStatus rebuilds the error a plugin returned with ToStatus: same text,
// errors.Is-matching the same sentinel, an *driver.OpError when it was one.
// ok is false when err carries no *Error detail (a transport error, or nil):
// then FromStatus returns err unchanged.
func FromStatus(err error) (_ error, ok bool) {
	if err == nil {
		return nil, false
	}
	st, isStatus := status.FromError(err)
	if !isStatus {
		return err, false
	}
	for _, d := range st.Details() {
		if e, isErr := d.(*Error); isErr {
			return e.Err(), true
		}
	}
	return err, false
}

// Err rebuilds the Go error e describes.
func (e *Error) Err() error {
	var kinds []error
	for _, k := range e.GetKinds() {
		if s := k.Sentinel(); s != nil {
			kinds = append(kinds, s)
		}
	}
	if len(kinds) == 0 { // from a plugin that sends only the first kind
		if s := e.GetKind().Sentinel(); s != nil {
			kinds = append(kinds, s)
		}
	}
	if op := e.GetOp(); op != nil {
		return &driver.OpError{Backend: op.GetBackend(), Op: op.GetOp(), Name: op.GetName(),
			Err: &RemoteError{Msg: op.GetMessage(), Kinds: kinds}}
	}
	return &RemoteError{Msg: e.GetMessage(), Kinds: kinds}
}

// RemoteError is an error rebuilt from the wire: the plugin's message, and
// every sentinel it wrapped (none when none) for errors.Is.
type RemoteError struct {
	Msg   string
	Kinds []error
}

func (e *RemoteError) Error() string { return e.Msg }

// Unwrap returns the sentinels, so errors.Is matches each of them.
func (e *RemoteError) Unwrap() []error { return e.Kinds }
