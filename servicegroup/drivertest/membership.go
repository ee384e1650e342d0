package drivertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

func (s *suite) membershipTests() []test {
	return []test{
		{"after Join the member is listed by every other session with its capabilities", s.testJoinListed},
		{"joining a missing group returns ErrGroupNotFound and racing join-or-create calls all succeed", s.testJoinOrCreate},
		{"the same member id joining from another session returns ErrMemberExists and leaves the first's capabilities untouched", s.testMemberExists},
		{"Leave removes the member and leaving a group not joined or missing returns ErrNotMember or ErrGroupNotFound", s.testLeave},
		{"two members joined are exactly two listed and a group with no members lists none", s.testExactlyListed},
		{"capabilities round-trip exactly", s.testCapabilities},
		{"updated capabilities are seen by other sessions and updating in a group not joined returns ErrNotMember", s.testSetCapabilities},
		{"IsUp is true for a live member and false for a departed, expired or forced-down one", s.testIsUp},
		{"each member's updated-at time advances with heartbeats and comes from the backend", s.testUpdatedAt},
		{"KnownMembers lists live members as live, dead ones it keeps as not live, and ErrGroupNotFound for a missing group", s.testKnownMembers},
		{"MemberStates and MemberState read what Members and Member read, with the same capabilities and marks", s.testMemberStates},
	}
}

// member finds id among sg's members of group.
func member(ctx context.Context, sg *servicegroup.ServiceGroup, group, id string) (servicegroup.Member, error) {
	ms, err := sg.Members(ctx, group)
	if err != nil {
		return servicegroup.Member{}, err
	}
	for _, m := range ms {
		if m.ID == id {
			return m, nil
		}
	}
	return servicegroup.Member{}, fmt.Errorf("%q not listed in %q by %q (members %q)", id, group, sg.Member(), ids(ms))
}

// capsAre checks that sg sees id in group with capabilities want.
func capsAre(sg *servicegroup.ServiceGroup, group, id string, want servicegroup.Capabilities) func() error {
	return func() error {
		m, err := member(context.Background(), sg, group, id)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(m.Capabilities, want) {
			return fmt.Errorf("capabilities of %q in %q seen by %q:\n got %#v\nwant %#v", id, group, sg.Member(), m.Capabilities, want)
		}
		return nil
	}
}

func (s *suite) testJoinListed(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	c := s.open(t, u, "c")
	mustCreate(t, b, "g")
	caps := servicegroup.Capabilities{"host": "compute-1", "vcpus": int64(16)}
	if err := a.Join(ctx, "g", caps); err != nil {
		t.Fatalf("join: %v", err)
	}
	for _, sg := range []*servicegroup.ServiceGroup{a, b, c} {
		if err := capsAre(sg, "g", "a", caps)(); err != nil {
			t.Error(err)
		}
		up, err := sg.GetAll(ctx, "g")
		if err != nil || len(up) != 1 || up[0].ID != "a" {
			t.Errorf("GetAll by %q: %q, %v; want [a]", sg.Member(), ids(up), err)
			continue
		}
		// GetAll answers who is up with their capabilities; it reads no
		// last heartbeat (that costs some backends a read per member).
		if !reflect.DeepEqual(up[0].Capabilities, caps) || !up[0].UpdatedAt.IsZero() {
			t.Errorf("GetAll by %q: %+v; want a's capabilities %v and no UpdatedAt", sg.Member(), up[0], caps)
		}
	}
	// The backend stores the bytes it is given.
	want, _ := driver.EncodeCapabilities(caps)
	ms, err := s.raw(t, u, "raw", longTTL).Members(ctx, "g")
	if err != nil || len(ms) != 1 {
		t.Fatalf("raw members: %+v, %v", ms, err)
	}
	if !bytes.Equal(ms[0].Capabilities, want) {
		t.Errorf("stored capabilities %x, want %x as written", ms[0].Capabilities, want)
	}
}

func (s *suite) testJoinOrCreate(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	if err := a.Join(ctx, "missing", nil); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Errorf("joining a missing group: %v; want ErrGroupNotFound", err)
	}
	if err := groupsAre(a)(); err != nil {
		t.Errorf("a failed Join created something: %v", err)
	}
	if err := a.JoinOrCreate(ctx, "solo", nil); err != nil {
		t.Errorf("join-or-create: %v", err)
	}
	if err := membersAre(a, "solo", "a")(); err != nil {
		t.Error(err)
	}

	const n = 6
	sgs := make([]*servicegroup.ServiceGroup, n)
	want := make([]string, n)
	for i := range sgs {
		want[i] = fmt.Sprintf("racer-%d", i)
		sgs[i] = s.open(t, u, want[i])
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i, sg := range sgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = sg.JoinOrCreate(ctx, "raced", servicegroup.Capabilities{"i": int64(i)})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("racing join-or-create by %q: %v", want[i], err)
		}
	}
	if err := membersAre(a, "raced", want...)(); err != nil {
		t.Error(err)
	}
	if err := groupsAre(a, "raced", "solo")(); err != nil {
		t.Error(err)
	}
}

func (s *suite) testMemberExists(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	first := s.open(t, u, "m")
	second := s.open(t, u, "m")
	obs := s.open(t, u, "obs")
	mustCreate(t, obs, "g")
	caps := servicegroup.Capabilities{"v": int64(1)}
	if err := first.Join(ctx, "g", caps); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := second.Join(ctx, "g", servicegroup.Capabilities{"v": int64(2)}); !errors.Is(err, servicegroup.ErrMemberExists) {
		t.Errorf("the same member joining from another session: %v; want ErrMemberExists", err)
	}
	if err := second.JoinOrCreate(ctx, "g", servicegroup.Capabilities{"v": int64(3)}); !errors.Is(err, servicegroup.ErrMemberExists) {
		t.Errorf("the same member joining (or creating) from another session: %v; want ErrMemberExists", err)
	}
	if err := second.SetCapabilities(ctx, "g", servicegroup.Capabilities{"v": int64(4)}); !errors.Is(err, servicegroup.ErrNotMember) {
		t.Errorf("the other session setting the member's capabilities: %v; want ErrNotMember", err)
	}
	if err := membersAre(obs, "g", "m")(); err != nil {
		t.Error(err)
	}
	if err := capsAre(obs, "g", "m", caps)(); err != nil {
		t.Error(err)
	}
	// Nor may the same session join twice.
	raw := s.raw(t, u, "r", longTTL)
	if err := raw.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := raw.Join(ctx, "g", []byte{0x80}); !errors.Is(err, driver.ErrMemberExists) {
		t.Errorf("the same session joining again: %v; want ErrMemberExists", err)
	}
	if err := membersAre(obs, "g", "m", "r")(); err != nil {
		t.Error(err)
	}
	// Neither session's heartbeats change that.
	time.Sleep(3 * heartbeat)
	if err := capsAre(obs, "g", "m", caps)(); err != nil {
		t.Errorf("after a few heartbeats: %v", err)
	}
	// Once the first leaves, the id is free.
	if err := first.Leave(ctx, "g"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if err := second.Join(ctx, "g", servicegroup.Capabilities{"v": int64(5)}); err != nil {
		t.Errorf("joining once the first left: %v", err)
	}
	if err := capsAre(obs, "g", "m", servicegroup.Capabilities{"v": int64(5)})(); err != nil {
		t.Error(err)
	}
}

func (s *suite) testLeave(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	mustCreate(t, a, "g")
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := b.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := a.Leave(ctx, "g"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if err := membersAre(b, "g", "b")(); err != nil {
		t.Errorf("right after Leave: %v", err)
	}
	if err := a.Leave(ctx, "g"); !errors.Is(err, servicegroup.ErrNotMember) {
		t.Errorf("leaving again: %v; want ErrNotMember", err)
	}
	mustCreate(t, a, "other")
	if err := a.Leave(ctx, "other"); !errors.Is(err, servicegroup.ErrNotMember) {
		t.Errorf("leaving a group never joined: %v; want ErrNotMember", err)
	}
	if err := a.Leave(ctx, "missing"); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Errorf("leaving a missing group: %v; want ErrGroupNotFound", err)
	}
	// The core does not re-join a group left.
	time.Sleep(3 * heartbeat)
	if err := membersAre(b, "g", "b")(); err != nil {
		t.Errorf("a few heartbeats after Leave: %v", err)
	}
}

func (s *suite) testExactlyListed(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	c := s.open(t, u, "c")
	mustCreate(t, c, "empty")
	ms, err := c.Members(ctx, "empty")
	if err != nil || len(ms) != 0 {
		t.Errorf("members of an empty group: %q, %v; want none", ids(ms), err)
	}
	mustCreate(t, c, "g")
	for _, sg := range []*servicegroup.ServiceGroup{a, b} {
		if err := sg.Join(ctx, "g", nil); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	if err := membersAre(c, "g", "a", "b")(); err != nil {
		t.Error(err)
	}
	if up, err := c.GetAll(ctx, "g"); err != nil || len(up) != 2 {
		t.Errorf("GetAll: %q, %v; want [a b]", ids(up), err)
	}
	d := s.raw(t, u, "raw", longTTL)
	if err := rawMembersAre(d, "g", "a", "b")(); err != nil {
		t.Error(err)
	}
	if err := rawMembersAre(d, "empty")(); err != nil {
		t.Error(err)
	}
}

func (s *suite) testCapabilities(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	obs := s.open(t, u, "obs")
	cases := []struct {
		name string
		in   servicegroup.Capabilities
		want servicegroup.Capabilities
	}{
		{
			name: "plain values",
			in: servicegroup.Capabilities{
				"str": "compute-1", "empty-str": "", "utf8": "节点-ü",
				"int": 42, "neg": int8(-7), "i32": int32(-100000), "u16": uint16(65535),
				"max": int64(math.MaxInt64), "min": int64(math.MinInt64), "huge": uint64(math.MaxUint64),
				"float": 1.5, "f32": float32(0.25), "tiny": math.SmallestNonzeroFloat64,
				"true": true, "false": false,
				"bytes": []byte{0, 1, 0xfe, 0xff}, "empty-bytes": []byte{}, "nil": nil,
			},
			want: servicegroup.Capabilities{
				"str": "compute-1", "empty-str": "", "utf8": "节点-ü",
				"int": int64(42), "neg": int64(-7), "i32": int64(-100000), "u16": int64(65535),
				"max": int64(math.MaxInt64), "min": int64(math.MinInt64), "huge": uint64(math.MaxUint64),
				"float": 1.5, "f32": 0.25, "tiny": math.SmallestNonzeroFloat64,
				"true": true, "false": false,
				"bytes": []byte{0, 1, 0xfe, 0xff}, "empty-bytes": []byte{}, "nil": nil,
			},
		},
		{
			name: "nested",
			in: servicegroup.Capabilities{
				"list":    []any{1, "two", 3.5, []any{true, nil}, map[string]any{"k": []byte("v")}},
				"strings": []string{"a", "b"},
				"map":     map[string]any{"inner": map[string]any{"deep": []any{int64(1)}}, "n": 2},
				"empties": map[string]any{"list": []any{}, "map": map[string]any{}},
			},
			want: servicegroup.Capabilities{
				"list":    []any{int64(1), "two", 3.5, []any{true, nil}, map[string]any{"k": []byte("v")}},
				"strings": []any{"a", "b"},
				"map":     map[string]any{"inner": map[string]any{"deep": []any{int64(1)}}, "n": int64(2)},
				"empties": map[string]any{"list": []any{}, "map": map[string]any{}},
			},
		},
		{name: "empty", in: servicegroup.Capabilities{}, want: servicegroup.Capabilities{}},
		{name: "missing", in: nil, want: servicegroup.Capabilities{}},
	}
	for i, tc := range cases {
		id := fmt.Sprintf("m%d", i)
		sg := s.open(t, u, id)
		if err := sg.JoinOrCreate(ctx, "g", tc.in); err != nil {
			t.Fatalf("%s: join: %v", tc.name, err)
		}
		m, err := member(ctx, obs, "g", id)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if m.Capabilities == nil {
			t.Errorf("%s: capabilities read back as a nil map; want an empty one", tc.name)
		}
		if !reflect.DeepEqual(m.Capabilities, tc.want) {
			t.Errorf("%s: capabilities read back\n got %#v\nwant %#v", tc.name, m.Capabilities, tc.want)
		}
	}
}

func (s *suite) testSetCapabilities(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	mustCreate(t, a, "g")
	mustCreate(t, a, "other")
	if err := a.Join(ctx, "g", servicegroup.Capabilities{"v": int64(1)}); err != nil {
		t.Fatalf("join: %v", err)
	}
	next := servicegroup.Capabilities{"v": int64(2), "extra": []any{"x"}}
	if err := a.SetCapabilities(ctx, "g", next); err != nil {
		t.Fatalf("set capabilities: %v", err)
	}
	if err := capsAre(b, "g", "a", next)(); err != nil {
		t.Error(err)
	}
	// Heartbeats do not bring the old ones back.
	time.Sleep(3 * heartbeat)
	if err := capsAre(b, "g", "a", next)(); err != nil {
		t.Errorf("a few heartbeats later: %v", err)
	}
	if err := a.SetCapabilities(ctx, "g", nil); err != nil {
		t.Fatalf("clear capabilities: %v", err)
	}
	if err := capsAre(b, "g", "a", servicegroup.Capabilities{})(); err != nil {
		t.Error(err)
	}
	if err := a.SetCapabilities(ctx, "other", next); !errors.Is(err, servicegroup.ErrNotMember) {
		t.Errorf("updating in a group not joined: %v; want ErrNotMember", err)
	}
	if err := a.SetCapabilities(ctx, "missing", next); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Errorf("updating in a missing group: %v; want ErrGroupNotFound", err)
	}
	if err := membersAre(b, "other")(); err != nil {
		t.Errorf("a failed update joined: %v", err)
	}
}

// isUp checks what sg says of member's IsUp in group.
func isUp(sg *servicegroup.ServiceGroup, group, member string, want bool) func() error {
	return func() error {
		up, err := sg.IsUp(context.Background(), group, member)
		if err != nil {
			return err
		}
		if up != want {
			return fmt.Errorf("IsUp(%q, %q) by %q: %v, want %v", group, member, sg.Member(), up, want)
		}
		return nil
	}
}

func (s *suite) testIsUp(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	obs := s.open(t, u, "obs")
	mustCreate(t, obs, "g")
	check := func(what string, f func() error) {
		t.Helper()
		if err := f(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	check("never joined", isUp(obs, "g", "a", false))
	if _, err := obs.IsUp(ctx, "missing", "a"); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Errorf("IsUp in a missing group: %v; want ErrGroupNotFound", err)
	}
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	check("live", isUp(obs, "g", "a", true))
	check("live, asked by itself", isUp(a, "g", "a", true))
	if err := a.Leave(ctx, "g"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	check("departed", isUp(obs, "g", "a", false))

	z := s.raw(t, u, "z", ttl)
	if err := z.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	check("live raw session", isUp(obs, "g", "z", true))
	eventually(t, expiry, isUp(obs, "g", "z", false))

	if !s.supports(t, ForceDown) {
		return
	}
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := obs.ForceDown(ctx, "g", "a", true); err != nil {
		t.Fatalf("force down: %v", err)
	}
	check("forced down", isUp(obs, "g", "a", false))
	mustCreate(t, obs, "elsewhere")
	if err := a.Join(ctx, "elsewhere", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	check("forced down in another group only", isUp(obs, "elsewhere", "a", true))
	check("forced down, asked by itself", isUp(a, "g", "a", false))
	m, err := member(ctx, obs, "g", "a")
	if err != nil {
		t.Errorf("a forced-down member is still live and listed: %v", err)
	} else if !m.ForcedDown {
		t.Errorf("Members: %+v; want ForcedDown", m)
	}
	if up, err := obs.GetAll(ctx, "g"); err != nil || len(up) != 0 {
		t.Errorf("GetAll with the only member forced down: %q, %v; want none", ids(up), err)
	}
	// The mark outlives the member's session.
	if err := a.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	a2 := s.open(t, u, "a")
	if err := a2.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join again: %v", err)
	}
	check("forced down, after a new session joined", isUp(obs, "g", "a", false))
	if err := a2.ForceDown(ctx, "g", "a", false); err != nil {
		t.Fatalf("clear force down: %v", err)
	}
	check("cleared", isUp(obs, "g", "a", true))
	if err := obs.ForceDown(ctx, "missing", "a", true); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Errorf("ForceDown in a missing group: %v; want ErrGroupNotFound", err)
	}
	// A member may be forced down before it joins.
	if err := obs.ForceDown(ctx, "g", "later", true); err != nil {
		t.Fatalf("force down a member not joined: %v", err)
	}
	later := s.open(t, u, "later")
	if err := later.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	check("forced down before it joined", isUp(obs, "g", "later", false))
}

func (s *suite) testUpdatedAt(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	obs := s.open(t, u, "obs")
	mustCreate(t, obs, "g")
	if _, err := obs.UpdatedAt(ctx, "g", "nobody"); !errors.Is(err, servicegroup.ErrNotMember) {
		t.Errorf("UpdatedAt of a member not joined: %v; want ErrNotMember", err)
	}

	// A raw session that heartbeats only when told: its time must not move
	// otherwise, whatever the reader's clock says.
	d := s.raw(t, u, "raw", longTTL)
	if err := d.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	t1, err := obs.UpdatedAt(ctx, "g", "raw")
	if err != nil {
		t.Fatalf("UpdatedAt: %v", err)
	}
	if t1.IsZero() {
		t.Fatalf("UpdatedAt is zero")
	}
	time.Sleep(50 * time.Millisecond)
	if t2, err := obs.UpdatedAt(ctx, "g", "raw"); err != nil || !t2.Equal(t1) {
		t.Errorf("UpdatedAt without a heartbeat moved from %v to %v (%v); it must be the backend's time of the last renewal", t1, t2, err)
	}
	if err := d.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	t3, err := obs.UpdatedAt(ctx, "g", "raw")
	if err != nil || !t3.After(t1) {
		t.Errorf("UpdatedAt after a heartbeat: %v (%v); want after %v", t3, err, t1)
	}

	// Through the core, it advances by itself.
	a := s.open(t, u, "a")
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	first, err := obs.UpdatedAt(ctx, "g", "a")
	if err != nil {
		t.Fatalf("UpdatedAt: %v", err)
	}
	eventually(t, soon, func() error {
		now, err := obs.UpdatedAt(ctx, "g", "a")
		if err != nil {
			return err
		}
		if !now.After(first) {
			return fmt.Errorf("UpdatedAt stays %v", now)
		}
		return nil
	})
}
