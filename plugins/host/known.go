package host

import (
	"context"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

// KnownMembers lists the members the plugin's backend holds a record of,
// live or not. Every session has it, whatever the plugin's driver offers
// (one struct per combination of optional interfaces would double with
// each one added): when the driver is no driver.KnownMemberLister it
// returns driver.ErrUnimplemented, which the core takes as the interface
// missing.
func (s *session) KnownMembers(ctx context.Context, group string) ([]driver.KnownMember, error) {
	const op = "known members"
	if !s.features.GetKnownMemberLister() {
		return nil, s.opErr(op, group, driver.ErrUnimplemented)
	}
	if err := s.ended(); err != nil {
		return nil, s.opErr(op, group, err)
	}
	resp, err := s.rpc.KnownMembers(ctx, &proto.GroupRequest{Group: group})
	if err != nil {
		return nil, s.result(ctx, op, group, err)
	}
	out := make([]driver.KnownMember, len(resp.GetMembers()))
	for i, m := range resp.GetMembers() {
		if m.GetMember() == nil {
			return nil, s.opErr(op, group, errNoResult)
		}
		out[i] = driver.KnownMember{Member: m.GetMember().Driver(), Live: m.GetLive()}
	}
	return out, nil
}

var _ driver.KnownMemberLister = (*session)(nil)
