package serve

import (
	"context"
	"fmt"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

// The optional driver interfaces. The host calls these only when Features
// says the driver implements them.

func notSupported(what string) error {
	return proto.ToStatus(fmt.Errorf("plugin: %s: %w", what, driver.ErrNotSupported))
}

// Watch streams a native watch. Its first message is a TYPE_UNSPECIFIED
// marker sent once the watch is established, so the host can return the
// driver's error for a bad group from its own Watch call.
func (s *server) Watch(req *proto.GroupRequest, stream proto.Driver_WatchServer) error {
	drv, err := s.session()
	if err != nil {
		return s.status(err)
	}
	w, ok := drv.(driver.Watcher)
	if !ok {
		return notSupported("watch")
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	events, errc, err := w.Watch(ctx, req.GetGroup())
	if err != nil {
		return s.status(err)
	}
	if err := stream.Send(&proto.WatchEvent{}); err != nil {
		return err
	}
	for ev := range events {
		if err := stream.Send(proto.FromEvent(ev)); err != nil {
			cancel()
			for range events { // the driver closes events once ctx ends
			}
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return s.status(<-errc)
}

func (s *server) Lock(ctx context.Context, req *proto.LockRequest) (*proto.TokenResponse, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	lw, ok := drv.(driver.LockWaiter)
	if !ok {
		return nil, notSupported("lock")
	}
	tok, err := lw.Lock(ctx, req.GetName())
	if err != nil {
		return nil, s.status(err)
	}
	return &proto.TokenResponse{Token: uint64(tok)}, nil
}

// GetMember reads one member's record (driver.MemberGetter).
func (s *server) GetMember(ctx context.Context, req *proto.MemberRequest) (*proto.Member, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	mg, ok := drv.(driver.MemberGetter)
	if !ok {
		return nil, notSupported("member")
	}
	var m driver.Member
	if l, ok := drv.(driver.StateLister); ok && req.GetWithoutUpdatedAt() {
		m, err = l.MemberState(ctx, req.GetGroup(), req.GetMember())
	} else {
		m, err = mg.Member(ctx, req.GetGroup(), req.GetMember())
	}
	if err != nil {
		return nil, s.status(err)
	}
	return proto.FromMember(m), nil
}

// KnownMembers lists the members the backend holds a record of, live or
// not (driver.KnownMemberLister).
func (s *server) KnownMembers(ctx context.Context, req *proto.GroupRequest) (*proto.KnownMembersResponse, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	kl, ok := drv.(driver.KnownMemberLister)
	if !ok {
		return nil, notSupported("known members")
	}
	ms, err := kl.KnownMembers(ctx, req.GetGroup())
	if err != nil {
		return nil, s.status(err)
	}
	out := make([]*proto.KnownMember, len(ms))
	for i, m := range ms {
		out[i] = &proto.KnownMember{Member: proto.FromMember(m.Member), Live: m.Live}
	}
	return &proto.KnownMembersResponse{Members: out}, nil
}
