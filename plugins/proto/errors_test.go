package proto_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

var sentinels = []error{
	driver.ErrGroupNotFound, driver.ErrGroupExists, driver.ErrGroupNotEmpty,
	driver.ErrMemberExists, driver.ErrNotMember, driver.ErrNotSupported,
	driver.ErrSessionLost, driver.ErrClosed, driver.ErrLockHeld, driver.ErrNotLocked,
	driver.ErrNoLeader, driver.ErrNotLeader, driver.ErrInvalidName, driver.ErrUnavailable,
	context.Canceled, context.DeadlineExceeded,
}

// TestErrorRoundTrip: every sentinel survives the wire, bare, wrapped, and
// in an *OpError, with its message unchanged.
func TestErrorRoundTrip(t *testing.T) {
	for _, sentinel := range sentinels {
		cases := []error{
			sentinel,
			fmt.Errorf("some context: %w", sentinel),
			driver.Errorf("file", "join", "compute", sentinel),
			driver.Errorf("file", "join", "compute", fmt.Errorf("%w: %q", sentinel, "m1")),
			fmt.Errorf("outer: %w", driver.Errorf("file", "lock", "", sentinel)),
		}
		for _, in := range cases {
			out, ok := proto.FromStatus(proto.ToStatus(in))
			if !ok {
				t.Fatalf("%v: no detail on the wire", in)
			}
			if out.Error() != in.Error() {
				t.Errorf("message %q, want %q", out, in)
			}
			if !errors.Is(out, sentinel) {
				t.Errorf("%v: errors.Is %v is false", out, sentinel)
			}
			for _, other := range sentinels {
				if other != sentinel && errors.Is(out, other) && !errors.Is(in, other) {
					t.Errorf("%v: also matches %v", out, other)
				}
			}
			var inOp, outOp *driver.OpError
			if errors.As(in, &inOp) && inOp.Error() == in.Error() {
				if !errors.As(out, &outOp) {
					t.Errorf("%v: not an *OpError after the wire", out)
				} else if outOp.Backend != inOp.Backend || outOp.Op != inOp.Op || outOp.Name != inOp.Name {
					t.Errorf("OpError %+v, want %+v", outOp, inOp)
				}
			}
		}
	}
}

func TestPlainError(t *testing.T) {
	in := errors.New("disk on fire")
	out, ok := proto.FromStatus(proto.ToStatus(in))
	if !ok || out.Error() != in.Error() {
		t.Fatalf("got %v, %v", out, ok)
	}
	for _, s := range sentinels {
		if errors.Is(out, s) {
			t.Errorf("plain error matches %v", s)
		}
	}
	if proto.ToStatus(nil) != nil {
		t.Error("ToStatus(nil) is not nil")
	}
	if err, ok := proto.FromStatus(nil); err != nil || ok {
		t.Error("FromStatus(nil) is not nil, false")
	}
}

func TestTransportErrorHasNoDetail(t *testing.T) {
	in := status.Error(codes.Unavailable, "connection reset")
	out, ok := proto.FromStatus(in)
	if ok || out != in {
		t.Fatalf("got %v, %v; want the error unchanged and false", out, ok)
	}
}

func TestEveryKindHasASentinel(t *testing.T) {
	for k := range proto.ErrorKind_name {
		kind := proto.ErrorKind(k)
		if kind == proto.ErrorKind_ERROR_KIND_UNSPECIFIED {
			continue
		}
		s := kind.Sentinel()
		if s == nil {
			t.Errorf("%v has no sentinel", kind)
			continue
		}
		if got := proto.KindOf(s); got != kind {
			t.Errorf("KindOf(%v) = %v, want %v", s, got, kind)
		}
	}
}
