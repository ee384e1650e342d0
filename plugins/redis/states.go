package redis

import (
	"context"

	goredis "github.com/redis/go-redis/v9"

	"github.com/musterhq/muster/servicegroup/driver"
)

// MemberStates lists what Members lists, without UpdatedAt and without a
// script: GetAll and the core's watch diff read it. A script that judges
// 10,000 members calls Redis 10,000 times from Lua (each owner's session
// record) and builds a reply of 40,000 values; here the group's fields and
// marks come in one MULTI (an atomic snapshot of the group), then every
// member's beat key (one MGET) and owner (one HMGET), pipelined: an owners
// map built from an HGETALL cost more. A muster member whose beat key
// names its owning session is live: the scripts set, renew and remove both
// together, with one TTL. One whose beat key names another session (a
// second session of the same member id, or tooz) is judged by its owner's
// session record, one EXISTS each, pipelined; a tooz member by its beat key,
// as tooz does. Dead members found are pruned by one script, which checks
// each again before it drops it and publishes its leaving.
func (s *session) MemberStates(ctx context.Context, group string) ([]driver.Member, error) {
	const op = "members"
	if err := s.usable(op, group); err != nil {
		return nil, err
	}
	var alive *goredis.IntCmd
	var fields *goredis.MapStringStringCmd
	var down *goredis.StringSliceCmd
	if _, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		alive = p.Exists(ctx, s.key(kSess, s.id))
		fields = p.HGetAll(ctx, s.key(kGroup, group))
		down = p.SMembers(ctx, s.key(kDown, group))
		return nil
	}); err != nil {
		return nil, s.unavailable(ctx, op, group, err)
	}
	if alive.Val() == 0 {
		s.markLost()
		return nil, driver.Errorf(backend, op, group, driver.ErrSessionLost)
	}
	if len(fields.Val()) == 0 { // a group's hash always has tooz's marker
		return nil, driver.Errorf(backend, op, group, driver.ErrGroupNotFound)
	}
	names := make([]string, 0, len(fields.Val()))
	beats := make([]string, 0, len(fields.Val()))
	for m := range fields.Val() {
		if m != createdField {
			names = append(names, m)
			beats = append(beats, s.key(kBeat, m))
		}
	}
	if len(names) == 0 {
		return []driver.Member{}, nil
	}
	var beatCmd, ownerCmd *goredis.SliceCmd
	if _, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		beatCmd = p.MGet(ctx, beats...)
		ownerCmd = p.HMGet(ctx, s.key(kOwners, group), names...)
		return nil
	}); err != nil {
		return nil, s.unavailable(ctx, op, group, err)
	}
	owners := make([]string, len(names))
	live := make([]bool, len(names))
	var ask []int // members judged by their owner's session record
	for i := range names {
		owners[i], _ = ownerCmd.Val()[i].(string)
		beat, isBeat := beatCmd.Val()[i].(string)
		switch {
		case owners[i] == "":
			live[i] = isBeat
		case beat == owners[i]:
			live[i] = true
		default:
			ask = append(ask, i)
		}
	}
	if len(ask) > 0 {
		p := s.rdb.Pipeline()
		cmds := make([]*goredis.IntCmd, len(ask))
		for j, i := range ask {
			cmds[j] = p.Exists(ctx, s.key(kSess, owners[i]))
		}
		if _, err := p.Exec(ctx); err != nil {
			return nil, s.unavailable(ctx, op, group, err)
		}
		for j, i := range ask {
			live[i] = cmds[j].Val() == 1
		}
	}
	marked := make(map[string]bool, len(down.Val()))
	for _, m := range down.Val() {
		marked[m] = true
	}
	out := make([]driver.Member, 0, len(names))
	var dead []any
	for i, m := range names {
		if !live[i] {
			dead = append(dead, m)
			continue
		}
		out = append(out, driver.Member{ID: m, Capabilities: readCaps(fields.Val()[m]), ForcedDown: marked[m]})
	}
	if len(dead) > 0 {
		// Housekeeping: the listing stands whether or not it succeeds.
		_, _ = s.call(ctx, "prune", group, pruneScript, append([]any{group, ms(s.cfg.toozTTL)}, dead...)...)
	}
	return out, nil
}

// MemberState is Member: its script reads one member's few records, and
// UpdatedAt comes with them at no extra cost.
func (s *session) MemberState(ctx context.Context, group, member string) (driver.Member, error) {
	return s.Member(ctx, group, member)
}

var _ driver.StateLister = (*session)(nil)
