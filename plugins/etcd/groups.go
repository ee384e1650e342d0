package etcd

import (
	"context"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/musterhq/muster/servicegroup/driver"
)

// Keys, as tooz's etcd3 and etcd3gw drivers lay them out (under the URL's
// prefix, if any):
//
//	tooz/groups/<group>/           the group ("" or, from etcd3gw, its own key)
//	tooz/groups/<group>/<member>   a member, on its session's lease: msgpack capabilities
//
// and muster's own, which tooz never lists:
//
//	muster/sessions/<lease>        session record, on the lease; rewritten by Heartbeat
//	muster/instances/<hash>        the lease of an instance's current session, on it
//	muster/down/<group>/<member>   forced-down mark (no lease: it outlives sessions)

func (s *session) groupsRoot() string           { return s.key("tooz/groups/") }
func (s *session) groupKey(g string) string     { return s.groupsRoot() + g + "/" }
func (s *session) memberKey(g, m string) string { return s.groupKey(g) + m }
func (s *session) marksPrefix(g string) string  { return s.key("muster/down/" + g + "/") }
func (s *session) markKey(g, m string) string   { return s.marksPrefix(g) + m }
func (s *session) sessionKey(l clientv3.LeaseID) string {
	return s.key(fmt.Sprintf("muster/sessions/%016x", int64(l)))
}

// begin checks the session may act and applies the request timeout.
func (s *session) begin(ctx context.Context, op, name string) (context.Context, context.CancelFunc, error) {
	if err := s.live(op, name); err != nil {
		return nil, nil, err
	}
	ctx, cancel := s.reqCtx(ctx)
	return ctx, cancel, nil
}

func exists(k string) clientv3.Cmp  { return clientv3.Compare(clientv3.CreateRevision(k), ">", 0) }
func missing(k string) clientv3.Cmp { return clientv3.Compare(clientv3.CreateRevision(k), "=", 0) }
func (s *session) mine(k string) clientv3.Cmp {
	return clientv3.Compare(clientv3.LeaseValue(k), "=", s.lease)
}

// groupMissing reads whether g exists after a failed transaction whose
// else branch read the group key.
func groupMissing(t *clientv3.TxnResponse) bool {
	return len(t.Responses) > 0 && t.Responses[0].GetResponseRange().Count == 0
}

func (s *session) CreateGroup(ctx context.Context, g string) error {
	ctx, cancel, err := s.begin(ctx, "create group", g)
	if err != nil {
		return err
	}
	defer cancel()
	gk := s.groupKey(g)
	t, err := s.cli.Txn(ctx).If(missing(gk)).Then(clientv3.OpPut(gk, "")).Commit()
	if err != nil {
		return s.fail("create group", g, err)
	}
	if !t.Succeeded {
		return driver.Errorf(backend, "create group", g, driver.ErrGroupExists)
	}
	return nil
}

func (s *session) DeleteGroup(ctx context.Context, g string) error {
	ctx, cancel, err := s.begin(ctx, "delete group", g)
	if err != nil {
		return err
	}
	defer cancel()
	gk := s.groupKey(g)
	for range 10 {
		r, err := s.cli.Get(ctx, gk, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return s.fail("delete group", g, err)
		}
		if r.Count == 0 {
			return driver.Errorf(backend, "delete group", g, driver.ErrGroupNotFound)
		}
		if r.Count > 1 {
			return driver.Errorf(backend, "delete group", g, driver.ErrGroupNotEmpty)
		}
		// Nothing under the group changed since the count (a join since
		// fails it), and the group is there.
		unchanged := clientv3.Compare(clientv3.ModRevision(gk), "<", r.Header.Revision+1).WithPrefix()
		t, err := s.cli.Txn(ctx).If(exists(gk), unchanged).
			Then(clientv3.OpDelete(gk), clientv3.OpDelete(s.marksPrefix(g), clientv3.WithPrefix())).Commit()
		if err != nil {
			return s.fail("delete group", g, err)
		}
		if t.Succeeded {
			return nil
		}
	}
	return driver.Errorf(backend, "delete group", g, driver.ErrGroupNotEmpty)
}

func (s *session) Groups(ctx context.Context) ([]string, error) {
	ctx, cancel, err := s.begin(ctx, "list groups", "")
	if err != nil {
		return nil, err
	}
	defer cancel()
	root := s.groupsRoot()
	r, err := s.cli.Get(ctx, root, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, s.fail("list groups", "", err)
	}
	out := []string{}
	for _, kv := range r.Kvs {
		rest := string(kv.Key[len(root):])
		// A group key ends with its only '/'; member keys go on.
		if i := strings.IndexByte(rest, '/'); i > 0 && i == len(rest)-1 {
			out = append(out, rest[:i])
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *session) Join(ctx context.Context, g string, caps []byte) error {
	ctx, cancel, err := s.begin(ctx, "join", g)
	if err != nil {
		return err
	}
	defer cancel()
	gk, mk := s.groupKey(g), s.memberKey(g, s.member)
	t, err := s.cli.Txn(ctx).If(exists(gk), missing(mk)).
		Then(clientv3.OpPut(mk, string(storeCaps(caps)), clientv3.WithLease(s.lease))).
		Else(clientv3.OpGet(gk, clientv3.WithCountOnly())).Commit()
	switch {
	case err != nil:
		return s.fail("join", g, err)
	case t.Succeeded:
		return nil
	case groupMissing(t):
		return driver.Errorf(backend, "join", g, driver.ErrGroupNotFound)
	}
	return driver.Errorf(backend, "join", g, fmt.Errorf("%w: %q", driver.ErrMemberExists, s.member))
}

// ownOp runs op on this session's member key in g if the key is on this
// session's lease: ErrNotMember or ErrGroupNotFound otherwise.
func (s *session) ownOp(ctx context.Context, opName, g string, op clientv3.Op) error {
	ctx, cancel, err := s.begin(ctx, opName, g)
	if err != nil {
		return err
	}
	defer cancel()
	gk, mk := s.groupKey(g), s.memberKey(g, s.member)
	t, err := s.cli.Txn(ctx).If(exists(gk), s.mine(mk)).Then(op).
		Else(clientv3.OpGet(gk, clientv3.WithCountOnly())).Commit()
	switch {
	case err != nil:
		return s.fail(opName, g, err)
	case t.Succeeded:
		return nil
	case groupMissing(t):
		return driver.Errorf(backend, opName, g, driver.ErrGroupNotFound)
	}
	if err := s.live(opName, g); err != nil {
		return err
	}
	return driver.Errorf(backend, opName, g, driver.ErrNotMember)
}

func (s *session) Leave(ctx context.Context, g string) error {
	return s.ownOp(ctx, "leave", g, clientv3.OpDelete(s.memberKey(g, s.member)))
}

func (s *session) SetCapabilities(ctx context.Context, g string, caps []byte) error {
	return s.ownOp(ctx, "set capabilities", g,
		clientv3.OpPut(s.memberKey(g, s.member), string(storeCaps(caps)), clientv3.WithLease(s.lease)))
}

func (s *session) SetForcedDown(ctx context.Context, g, member string, down bool) error {
	ctx, cancel, err := s.begin(ctx, "force down", g)
	if err != nil {
		return err
	}
	defer cancel()
	gk, mark := s.groupKey(g), s.markKey(g, member)
	op := clientv3.OpDelete(mark)
	if down {
		op = clientv3.OpPut(mark, "")
	}
	t, err := s.cli.Txn(ctx).If(exists(gk)).Then(op).Commit()
	if err != nil {
		return s.fail("force down", g, err)
	}
	if !t.Succeeded {
		return driver.Errorf(backend, "force down", g, driver.ErrGroupNotFound)
	}
	return nil
}

// Members lists g's live members: the keys under the group on a lease. A
// key on no lease is not a member (it would never expire).
func (s *session) Members(ctx context.Context, g string) ([]driver.Member, error) {
	return s.members(ctx, g, true)
}

// MemberStates is Members in one transaction (driver.StateLister): without
// UpdatedAt it asks no lease its age, so a watch's diff costs one round
// trip whatever the group's size. A member whose lease has expired but
// which the server has not revoked yet (its lessor checks every 500 ms) is
// listed until it is; its keys' deletion then reaches the watch.
func (s *session) MemberStates(ctx context.Context, g string) ([]driver.Member, error) {
	return s.members(ctx, g, false)
}

func (s *session) members(ctx context.Context, g string, times bool) ([]driver.Member, error) {
	ctx, cancel, err := s.begin(ctx, "members", g)
	if err != nil {
		return nil, err
	}
	defer cancel()
	gk := s.groupKey(g)
	t, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(gk, clientv3.WithPrefix()),
		clientv3.OpGet(s.marksPrefix(g), clientv3.WithPrefix(), clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return nil, s.fail("members", g, err)
	}
	kvs := t.Responses[0].GetResponseRange().Kvs
	found := false
	type entry struct {
		id    string
		caps  []byte
		lease clientv3.LeaseID
	}
	var entries []entry
	var leases []clientv3.LeaseID
	for _, kv := range kvs {
		id := string(kv.Key[len(gk):])
		if id == "" {
			found = true
			continue
		}
		if kv.Lease == 0 || strings.Contains(id, "/") {
			continue
		}
		entries = append(entries, entry{id, loadCaps(kv.Value), clientv3.LeaseID(kv.Lease)})
		leases = append(leases, clientv3.LeaseID(kv.Lease))
	}
	if !found {
		return nil, driver.Errorf(backend, "members", g, driver.ErrGroupNotFound)
	}
	marks := map[string]bool{}
	mp := s.marksPrefix(g)
	for _, kv := range t.Responses[1].GetResponseRange().Kvs {
		marks[string(kv.Key[len(mp):])] = true
	}
	out := make([]driver.Member, 0, len(entries))
	if !times {
		for _, e := range entries {
			out = append(out, driver.Member{ID: e.id, Capabilities: e.caps, ForcedDown: marks[e.id]})
		}
		return out, nil
	}
	at, err := s.updatedAt(ctx, leases)
	if err != nil {
		return nil, s.fail("members", g, err)
	}
	for _, e := range entries {
		when, ok := at[e.lease]
		if !ok {
			continue // its lease expired meanwhile
		}
		out = append(out, driver.Member{ID: e.id, Capabilities: e.caps, UpdatedAt: when, ForcedDown: marks[e.id]})
	}
	return out, nil
}

var _ driver.StateLister = (*session)(nil)

// Member reads one member: IsUp and UpdatedAt cost one transaction and one
// lease look-up, not a listing.
func (s *session) Member(ctx context.Context, g, member string) (driver.Member, error) {
	return s.oneMember(ctx, g, member, true)
}

// MemberState is Member without UpdatedAt (driver.StateLister): one
// transaction, no TimeToLive of the member's lease (a key on a lease is
// deleted with it, so its presence is the member's liveness).
func (s *session) MemberState(ctx context.Context, g, member string) (driver.Member, error) {
	return s.oneMember(ctx, g, member, false)
}

func (s *session) oneMember(ctx context.Context, g, member string, times bool) (driver.Member, error) {
	ctx, cancel, err := s.begin(ctx, "member", g)
	if err != nil {
		return driver.Member{}, err
	}
	defer cancel()
	t, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.groupKey(g), clientv3.WithCountOnly()),
		clientv3.OpGet(s.memberKey(g, member)),
		clientv3.OpGet(s.markKey(g, member), clientv3.WithCountOnly())).Commit()
	if err != nil {
		return driver.Member{}, s.fail("member", g, err)
	}
	if t.Responses[0].GetResponseRange().Count == 0 {
		return driver.Member{}, driver.Errorf(backend, "member", g, driver.ErrGroupNotFound)
	}
	kvs := t.Responses[1].GetResponseRange().Kvs
	if len(kvs) == 0 || kvs[0].Lease == 0 {
		return driver.Member{}, driver.Errorf(backend, "member", g, fmt.Errorf("%w: %q", driver.ErrNotMember, member))
	}
	m := driver.Member{ID: member, Capabilities: loadCaps(kvs[0].Value),
		ForcedDown: t.Responses[2].GetResponseRange().Count > 0}
	if !times {
		return m, nil
	}
	l := clientv3.LeaseID(kvs[0].Lease)
	at, err := s.updatedAt(ctx, []clientv3.LeaseID{l})
	if err != nil {
		return driver.Member{}, s.fail("member", g, err)
	}
	when, ok := at[l]
	if !ok {
		return driver.Member{}, driver.Errorf(backend, "member", g, fmt.Errorf("%w: %q", driver.ErrNotMember, member))
	}
	m.UpdatedAt = when
	return m, nil
}

// emptyMap is msgpack's {}: what "no capabilities" is stored as, so tooz
// reads a map.
var emptyMap = []byte{0x80}

func storeCaps(caps []byte) []byte {
	if len(caps) == 0 {
		return emptyMap
	}
	return caps
}

// loadCaps reads a member's value: no capabilities (nil) for an empty map,
// and for what tooz stores when it was given none (msgpack nil, b"" or "").
func loadCaps(b []byte) []byte {
	switch string(b) {
	case "", "\x80", "\xc0", "\xc4\x00", "\xa0":
		return nil
	}
	return b
}
