package host

import (
	"cmp"
	"context"
	"errors"
	"io"
	"time"

	"github.com/musterhq/muster/plugins/proto"
)

// maxIdleCalls is how many idle Call streams a session keeps. Concurrent
// callers beyond it open more; the extra ones are closed when done.
const maxIdleCalls = 4

// callStream is one Call stream, used by one caller at a time.
type callStream struct {
	st     proto.Driver_CallClient
	cancel context.CancelFunc
}

// hot runs a hot call over a Call stream (see muster.proto): a message on
// an open HTTP/2 stream instead of a new stream per call. Errors are what
// the unary RPC would have given.
func (s *session) hot(ctx context.Context, op, name string, req *proto.CallRequest) (*proto.CallResponse, error) {
	if err := s.ended(); err != nil {
		return nil, s.opErr(op, name, err)
	}
	resp, err := s.call(ctx, req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || callerGaveUp(ctx) != nil {
			// The caller gave up: the session is fine.
			return nil, s.opErr(op, name, cmp.Or(callerGaveUp(ctx), err))
		}
		return nil, s.result(ctx, op, name, err)
	}
	if e := resp.GetError(); e != nil {
		return nil, s.pluginErr(op, name, e.Err())
	}
	return resp, nil
}

// call sends req on an idle stream (or a new one) and waits for its answer
// or ctx. A stream that ctx interrupted or that broke is dropped; a healthy
// one goes back to the pool.
func (s *session) call(ctx context.Context, req *proto.CallRequest) (*proto.CallResponse, error) {
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return nil, context.DeadlineExceeded
		}
		req.TimeoutNs = int64(left)
	}
	var cs *callStream
	select {
	case cs = <-s.calls:
	default:
		sctx, cancel := context.WithCancel(s.bg)
		st, err := s.rpc.Call(sctx)
		if err != nil {
			cancel()
			return nil, err
		}
		cs = &callStream{st: st, cancel: cancel}
	}
	// A context that cannot end needs no watch: registering one costs
	// about a microsecond a call (BenchmarkCallPath), for nothing.
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, cs.cancel)
	}
	err := cs.st.Send(req)
	if errors.Is(err, io.EOF) {
		err = nil // the stream's real error comes from Recv
	}
	var resp *proto.CallResponse
	if err == nil {
		resp, err = cs.st.Recv()
	}
	if !stop() || err != nil {
		cs.cancel() // interrupted by ctx, or broken: not reusable
		return resp, err
	}
	select {
	case s.calls <- cs:
	default:
		cs.cancel()
	}
	return resp, nil
}
