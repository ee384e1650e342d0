package serve

import (
	"context"
	"time"

	"google.golang.org/grpc/status"

	"github.com/musterhq/muster/plugins/proto"
)

// Call serves the hot calls over one stream, in order, each exactly as its
// unary RPC would (same checks, same errors).
func (s *server) Call(stream proto.Driver_CallServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil // the host closed or dropped the stream
		}
		if err := stream.Send(s.call(stream.Context(), req)); err != nil {
			return err
		}
	}
}

// unknownCall answers every call this plugin does not know; only read
// (sent) after init, so one serves all streams.
var unknownCall = &proto.CallResponse{Error: proto.ToError(errUnknownCall)}

func (s *server) call(ctx context.Context, req *proto.CallRequest) *proto.CallResponse {
	if t := req.GetTimeoutNs(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t))
		defer cancel()
	}
	var (
		resp = &proto.CallResponse{}
		err  error
	)
	switch c := req.GetCall().(type) {
	case *proto.CallRequest_Heartbeat:
		var r *proto.Empty
		r, err = s.Heartbeat(ctx, c.Heartbeat)
		resp.Result = &proto.CallResponse_Empty{Empty: r}
	case *proto.CallRequest_Members:
		var r *proto.MembersResponse
		r, err = s.Members(ctx, c.Members)
		resp.Result = &proto.CallResponse_Members{Members: r}
	case *proto.CallRequest_Member:
		var r *proto.Member
		r, err = s.GetMember(ctx, c.Member)
		resp.Result = &proto.CallResponse_Member{Member: r}
	case *proto.CallRequest_LockHolder:
		var r *proto.LockHolderResponse
		r, err = s.LockHolder(ctx, c.LockHolder)
		resp.Result = &proto.CallResponse_LockHolder{LockHolder: r}
	case *proto.CallRequest_TryLock:
		var r *proto.TokenResponse
		r, err = s.TryLock(ctx, c.TryLock)
		resp.Result = &proto.CallResponse_Token{Token: r}
	case *proto.CallRequest_Unlock:
		var r *proto.Empty
		r, err = s.Unlock(ctx, c.Unlock)
		resp.Result = &proto.CallResponse_Empty{Empty: r}
	default:
		return unknownCall
	}
	if err != nil {
		return &proto.CallResponse{Error: wireError(err)}
	}
	return resp
}

// wireError is the *proto.Error inside a status the unary methods return.
func wireError(err error) *proto.Error {
	for _, d := range status.Convert(err).Details() {
		if e, ok := d.(*proto.Error); ok {
			return e
		}
	}
	return proto.ToError(err)
}
