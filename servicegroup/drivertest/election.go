package drivertest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

func (s *suite) electionTests() []test {
	return []test{
		{"a lone candidate is elected and every observer can ask who leads", s.testLoneCandidate},
		{"with several candidates exactly one leads and another is elected when it resigns closes or expires", s.testSeveralCandidates},
		{"Leader of a group nobody leads returns ErrNoLeader", s.testNoLeader},
		{"resigning and re-campaigning bounces leadership between two candidates", s.testBounce},
		{"a leader whose session is lost is told so before or when another is elected", s.testLeaderLost},
	}
}

// leaderIs checks that sg sees want leading group.
func leaderIs(sg *servicegroup.ServiceGroup, group, want string) func() error {
	return func() error {
		l, err := sg.Leader(context.Background(), group)
		if err != nil {
			return fmt.Errorf("Leader(%q) by %q: %w", group, sg.Member(), err)
		}
		if l != want {
			return fmt.Errorf("Leader(%q) by %q: %q, want %q", group, sg.Member(), l, want)
		}
		return nil
	}
}

// campaign is a Campaign running in the background.
type campaign struct {
	member string
	done   chan struct{}
	lead   *servicegroup.Leadership
	err    error
}

func startCampaign(ctx context.Context, sg *servicegroup.ServiceGroup, group string) *campaign {
	c := &campaign{member: sg.Member(), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.lead, c.err = sg.Campaign(ctx, group)
	}()
	return c
}

// elected waits for exactly one of cs to win, within timeout, and returns
// it; the others are still campaigning.
func elected(t *testing.T, timeout time.Duration, cs ...*campaign) *campaign {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var won []*campaign
		for _, c := range cs {
			if closed(c.done) {
				if c.err != nil {
					t.Fatalf("campaign of %q: %v", c.member, c.err)
				}
				won = append(won, c)
			}
		}
		switch {
		case len(won) > 1:
			t.Fatalf("%q (lost since: %v) and %q (lost since: %v) both elected", won[0].member, closed(won[0].lead.Lost()),
				won[1].member, closed(won[1].lead.Lost()))
		case len(won) == 1:
			if len(cs) > 1 {
				// Give a second winner a moment to show itself.
				time.Sleep(3 * heartbeat)
			}
			for _, c := range cs {
				if c != won[0] && closed(c.done) {
					t.Fatalf("%q and %q both elected (%v)", won[0].member, c.member, c.err)
				}
			}
			return won[0]
		case time.Now().After(deadline):
			t.Fatalf("nobody elected within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func without(cs []*campaign, c *campaign) []*campaign {
	var out []*campaign
	for _, x := range cs {
		if x != c {
			out = append(out, x)
		}
	}
	return out
}

func (s *suite) testLoneCandidate(t *testing.T) {
	if !s.supports(t, Election) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	obs := s.open(t, u, "obs")
	// The group need not exist to be led.
	lead, err := a.Campaign(ctx, "nogroup")
	if err != nil {
		t.Fatalf("campaign: %v", err)
	}
	if lead.Group() != "nogroup" || lead.Token() == 0 {
		t.Errorf("leadership of %q with token %d", lead.Group(), lead.Token())
	}
	if closed(lead.Lost()) {
		t.Errorf("Lost is closed for a fresh leader")
	}
	for _, sg := range []*servicegroup.ServiceGroup{a, obs} {
		if err := leaderIs(sg, "nogroup", "a")(); err != nil {
			t.Error(err)
		}
	}
	// Another candidate waits, and gives up when its context says so.
	c, cancel := context.WithTimeout(ctx, 3*heartbeat)
	defer cancel()
	if _, err := obs.Campaign(c, "nogroup"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Campaign while another leads, past its deadline: %v; want context.DeadlineExceeded", err)
	}
	if err := leaderIs(obs, "nogroup", "a")(); err != nil {
		t.Error(err)
	}
	// A watcher of a led group starts with who leads.
	mustCreate(t, obs, "g")
	if _, err := a.Campaign(ctx, "g"); err != nil {
		t.Fatalf("campaign: %v", err)
	}
	w, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	expect(t, w, servicegroup.LeaderChanged, "g", "a", soon)
}

func (s *suite) testSeveralCandidates(t *testing.T) {
	if !s.supports(t, Election) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	obs := s.open(t, u, "obs")
	mustCreate(t, obs, "g")
	w, err := obs.Watch(ctx, "g")
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	type candidate struct {
		sg   *servicegroup.ServiceGroup
		ctrl *controlled
	}
	cands := map[string]candidate{}
	var cs []*campaign
	for i := range 4 {
		name := fmt.Sprintf("c%d", i)
		ctrl := s.control(t)
		sg := s.openWith(t, u, name, ctrl.Open)
		cands[name] = candidate{sg, ctrl}
		cs = append(cs, startCampaign(ctx, sg, "g"))
	}
	observe := func(leader string) {
		t.Helper()
		if err := leaderIs(obs, "g", leader)(); err != nil {
			t.Fatal(err)
		}
		for {
			ev, ok := next(t, w, soon)
			if !ok {
				t.Fatalf("watch ended: %v", w.Err())
			}
			if ev.Type != servicegroup.LeaderChanged {
				t.Fatalf("event %s %q; want only leader changes", ev.Type, ev.Member)
			}
			if ev.Member == leader {
				return
			}
			if ev.Member != "" {
				t.Fatalf("watch saw %q leading; want %q", ev.Member, leader)
			}
		}
	}

	first := elected(t, soon, cs...)
	observe(first.member)
	cs = without(cs, first)
	firstTok := first.lead.Token()
	if err := first.lead.Resign(ctx); err != nil {
		t.Fatalf("resign: %v", err)
	}
	if err := first.lead.Resign(ctx); !errors.Is(err, servicegroup.ErrNotLeader) {
		t.Errorf("resigning twice: %v; want ErrNotLeader", err)
	}

	second := elected(t, soon, cs...)
	if second.lead.Token() <= firstTok {
		t.Errorf("term tokens %d then %d; want increasing", firstTok, second.lead.Token())
	}
	observe(second.member)
	cs = without(cs, second)
	if err := cands[second.member].sg.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !closed(second.lead.Lost()) {
		t.Errorf("Lost not closed after the leader's Close")
	}

	third := elected(t, soon, cs...)
	observe(third.member)
	cs = without(cs, third)
	thirdTok := third.lead.Token()
	ctrl := cands[third.member].ctrl
	ctrl.set(frozen) // its session expires; it does not know yet

	fourth := elected(t, expiry, cs...)
	observe(fourth.member)
	if fourth.lead.Token() <= thirdTok {
		t.Errorf("term tokens %d then %d; want increasing", thirdTok, fourth.lead.Token())
	}
	ctrl.set(live)
	eventually(t, soon, func() error {
		if !closed(third.lead.Lost()) {
			return errors.New("the expired leader's Lost is not closed")
		}
		return nil
	})
	// It does not take leadership back when its new session comes up.
	time.Sleep(3 * heartbeat)
	if err := leaderIs(obs, "g", fourth.member)(); err != nil {
		t.Error(err)
	}
}

func (s *suite) testNoLeader(t *testing.T) {
	if !s.supports(t, Election) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	mustCreate(t, a, "g")
	if l, err := a.Leader(ctx, "g"); !errors.Is(err, servicegroup.ErrNoLeader) {
		t.Errorf("Leader of an unled group: %q, %v; want ErrNoLeader", l, err)
	}
	if l, err := a.Leader(ctx, "nogroup"); !errors.Is(err, servicegroup.ErrNoLeader) {
		t.Errorf("Leader of a group that does not exist: %q, %v; want ErrNoLeader", l, err)
	}
	lead, err := a.Campaign(ctx, "g")
	if err != nil {
		t.Fatalf("campaign: %v", err)
	}
	if err := lead.Resign(ctx); err != nil {
		t.Fatalf("resign: %v", err)
	}
	if l, err := a.Leader(ctx, "g"); !errors.Is(err, servicegroup.ErrNoLeader) {
		t.Errorf("Leader after the only leader resigned: %q, %v; want ErrNoLeader", l, err)
	}
}

func (s *suite) testBounce(t *testing.T) {
	if !s.supports(t, Election) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	sgs := []*servicegroup.ServiceGroup{s.open(t, u, "a"), s.open(t, u, "b")}
	obs := s.open(t, u, "obs")
	lead, err := sgs[0].Campaign(ctx, "g")
	if err != nil {
		t.Fatalf("campaign: %v", err)
	}
	tokens := []servicegroup.Token{lead.Token()}
	for round := 1; round <= 4; round++ {
		cur, nxt := sgs[(round-1)%2], sgs[round%2]
		if err := leaderIs(obs, "g", cur.Member())(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		c := startCampaign(ctx, nxt, "g")
		time.Sleep(2 * heartbeat)
		if closed(c.done) {
			t.Fatalf("round %d: %q elected while %q leads (%v)", round, nxt.Member(), cur.Member(), c.err)
		}
		if err := lead.Resign(ctx); err != nil {
			t.Fatalf("round %d: resign: %v", round, err)
		}
		lead = elected(t, soon, c).lead
		tokens = append(tokens, lead.Token())
		if err := leaderIs(obs, "g", nxt.Member())(); err != nil {
			t.Errorf("round %d: %v", round, err)
		}
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Errorf("term tokens %v; want strictly increasing", tokens)
			break
		}
	}
}

func (s *suite) testLeaderLost(t *testing.T) {
	if !s.supports(t, Election) {
		return
	}
	u := s.b.URL(t)
	ctx := tctx(t)
	ctrl := s.control(t)
	a := s.openWith(t, u, "a", ctrl.Open)
	b := s.open(t, u, "b")
	lead, err := a.Campaign(ctx, "g")
	if err != nil {
		t.Fatalf("campaign: %v", err)
	}
	c := startCampaign(ctx, b, "g")

	// a can no longer reach the backend: its session expires there, and b
	// is elected. a must have stopped believing it leads by then: two
	// leaders at once is what fencing exists to prevent.
	ctrl.set(partitioned)
	partitionedAt := time.Now()
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("campaign: %v", c.err)
		}
	case <-time.After(expiry):
		t.Fatalf("b not elected within %v of a's partition", expiry)
	}
	// No slack: the core declares its session lost at its local deadline
	// (last heartbeat sent + TTL − margin), before the backend can expire
	// it, so a's Lost is closed before b can have been elected.
	if !closed(lead.Lost()) {
		t.Errorf("b elected %v after a's partition while a's leadership is not reported lost (TTL %v): two leaders at once",
			time.Since(partitionedAt).Round(time.Millisecond), ttl)
	}
	ctrl.set(live)
	eventually(t, soon, func() error {
		if !closed(lead.Lost()) {
			return errors.New("the Lost channel is not closed even after the partition healed")
		}
		return nil
	})
	if err := lead.Resign(ctx); !errors.Is(err, servicegroup.ErrNotLeader) {
		t.Errorf("Resign after the leadership was lost: %v; want ErrNotLeader", err)
	}
	if err := leaderIs(b, "g", "b")(); err != nil {
		t.Error(err)
	}
}
