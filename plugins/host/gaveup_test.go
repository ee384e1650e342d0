package host

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pastDeadline is a context whose deadline has passed but whose timer has
// not fired yet, as on a loaded machine when the plugin's reset of the
// call arrives first.
type pastDeadline struct{ context.Context }

func (pastDeadline) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// A call the plugin's gRPC server reset at the caller's deadline is the
// caller's timeout, not a dead plugin: the session is not lost (result
// would kill the process, which this session has none of).
func TestResetAtDeadlineIsCallerTimeout(t *testing.T) {
	s := &session{scheme: "x"}
	reset := status.Error(codes.Canceled, "stream terminated by RST_STREAM with error code: CANCEL")
	err := s.result(pastDeadline{context.Background()}, "lock", "l", reset)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a reset at the deadline: %v; want DeadlineExceeded", err)
	}
	if callerGaveUp(context.Background()) != nil {
		t.Fatal("a context with no deadline reads as given up")
	}
}
