package host

import (
	"context"
	"errors"
	"fmt"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

// StreamFloor opens a Call stream of its own to d's plugin and returns one
// round trip on it, for the floor a hot call cannot go below: a request
// that names no call, which the plugin's Call loop answers at once with
// its ready-made unknown-call error, without touching the session. Same
// process, same AutoMTLS connection and gRPC options as every call; none
// of the host's or plugin's per-call work. closeStream ends the stream.
func StreamFloor(ctx context.Context, d driver.Driver) (roundTrip func() error, closeStream func(), err error) {
	p, ok := d.(interface{ plugin() *session })
	if !ok {
		return nil, nil, fmt.Errorf("%T is not a plugin session", d)
	}
	s := p.plugin()
	sctx, cancel := context.WithCancel(ctx)
	st, err := s.rpc.Call(sctx)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req := &proto.CallRequest{}
	roundTrip = func() error {
		if err := st.Send(req); err != nil {
			return err
		}
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		if resp.GetError() == nil {
			return errors.New("the plugin answered an empty call without an error")
		}
		return nil
	}
	return roundTrip, cancel, nil
}

// plugin is s itself, also through the structs that add optional
// interfaces to it (see driver).
func (s *session) plugin() *session { return s }
