package partition

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	_ "github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/hashring"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var storeSeq atomic.Int64

// newURL is a fresh memory backend for one test.
func newURL(t *testing.T) string {
	return fmt.Sprintf("memory://partition-%s-%d", t.Name(), storeSeq.Add(1))
}

func open(t *testing.T, url, member string) *servicegroup.ServiceGroup {
	t.Helper()
	sg, err := servicegroup.Open(context.Background(), servicegroup.Config{
		URL: url, Member: member,
		HeartbeatInterval: 100 * time.Millisecond, MemberTTL: 3 * time.Second, // no test here waits for an expiry
		WatchInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sg.Close(context.Background()) })
	return sg
}

func join(t *testing.T, sg *servicegroup.ServiceGroup, group string, caps servicegroup.Capabilities) {
	t.Helper()
	if err := sg.JoinOrCreate(context.Background(), group, caps); err != nil {
		t.Fatal(err)
	}
}

func newPartitioner(t *testing.T, sg *servicegroup.ServiceGroup, group string, opts ...Option) *Partitioner {
	t.Helper()
	p, err := New(context.Background(), sg, group, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// waitMembers waits until every p sees exactly want.
func waitMembers(t *testing.T, want []string, ps ...*Partitioner) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range ps {
		for !slices.Equal(p.Members(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %v, want %v", p.Member(), p.Members(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("resource-%d", i)
	}
	return out
}

// checkSplit asserts the partitioners' subsets of all are disjoint and
// cover all, and returns each one's subset.
func checkSplit(t *testing.T, all []string, ps ...*Partitioner) map[string][]string {
	t.Helper()
	owner := map[string]string{}
	subsets := map[string][]string{}
	for _, p := range ps {
		sub := p.Subset(all)
		subsets[p.Member()] = sub
		for _, k := range sub {
			if o, dup := owner[k]; dup {
				t.Fatalf("%q owned by %s and %s", k, o, p.Member())
			}
			owner[k] = p.Member()
			if !p.Owns([]byte(k)) {
				t.Fatalf("%s: Subset has %q but Owns says no", p.Member(), k)
			}
		}
	}
	if len(owner) != len(all) {
		t.Fatalf("%d of %d keys owned", len(owner), len(all))
	}
	return subsets
}

func TestSplitDisjointAndComplete(t *testing.T) {
	t.Parallel()
	for _, alg := range []hashring.Algorithm{hashring.Default, hashring.Tooz} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			url := newURL(t)
			names := []string{"a", "b", "c"}
			var ps []*Partitioner
			for _, n := range names {
				sg := open(t, url, n)
				join(t, sg, "central", nil)
				ps = append(ps, newPartitioner(t, sg, "central", WithAlgorithm(alg)))
			}
			waitMembers(t, names, ps...)
			all := keys(1000)
			subs := checkSplit(t, all, ps...)
			for n, s := range subs {
				if len(s) < 150 {
					t.Errorf("%s owns only %d of 1000 keys", n, len(s))
				}
			}
			// Owners agrees with Owns, and replicas are distinct members.
			for _, k := range all[:50] {
				os := ps[0].Owners([]byte(k), 2)
				if len(os) != 2 || os[0] == os[1] {
					t.Fatalf("Owners(%q, 2) = %v", k, os)
				}
				for _, p := range ps {
					if p.Owns([]byte(k)) != (p.Member() == os[0]) {
						t.Fatalf("%s: Owns(%q) disagrees with Owners %v", p.Member(), k, os)
					}
				}
			}
		})
	}
}

func TestLeaveMovesOnlyTheLeaversKeys(t *testing.T) {
	t.Parallel()
	url := newURL(t)
	sgs := map[string]*servicegroup.ServiceGroup{}
	var ps []*Partitioner
	for _, n := range []string{"a", "b", "c"} {
		sgs[n] = open(t, url, n)
		join(t, sgs[n], "central", nil)
		ps = append(ps, newPartitioner(t, sgs[n], "central"))
	}
	waitMembers(t, []string{"a", "b", "c"}, ps...)
	all := keys(1000)
	before := checkSplit(t, all, ps...)
	// Drain Changed signals from the start-up.
	for _, p := range ps {
		select {
		case <-p.Changed():
		default:
		}
	}

	if err := sgs["c"].Leave(context.Background(), "central"); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps[:2] {
		select {
		case <-p.Changed():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Changed did not fire after c left", p.Member())
		}
	}
	waitMembers(t, []string{"a", "b"}, ps...)
	after := checkSplit(t, all, ps[0], ps[1])
	for _, n := range []string{"a", "b"} {
		for _, k := range before[n] {
			if !slices.Contains(after[n], k) {
				t.Errorf("%q moved away from %s, which stayed", k, n)
			}
		}
	}
	if got := ps[2].Subset(all); len(got) != 0 {
		t.Errorf("c left but still owns %d keys", len(got))
	}

	// Closing a session (a dying agent) is seen the same way.
	if err := sgs["b"].Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, []string{"a"}, ps[0])
	if got := ps[0].Subset(all); len(got) != len(all) {
		t.Errorf("a alone owns %d of %d keys", len(got), len(all))
	}
}

func TestWeights(t *testing.T) {
	t.Parallel()
	for _, alg := range []hashring.Algorithm{hashring.Default, hashring.Tooz} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			url := newURL(t)
			weights := map[string]int{"w1": 1, "w2": 2, "w3": 3}
			var ps []*Partitioner
			for _, n := range []string{"w1", "w2", "w3"} {
				sg := open(t, url, n)
				join(t, sg, "central", servicegroup.Capabilities{"weight": weights[n]})
				ps = append(ps, newPartitioner(t, sg, "central", WithAlgorithm(alg)))
			}
			waitMembers(t, []string{"w1", "w2", "w3"}, ps...)
			if got := ps[0].Weights(); got["w1"] != 1 || got["w2"] != 2 || got["w3"] != 3 {
				t.Fatalf("weights %v", got)
			}
			all := keys(12000)
			subs := checkSplit(t, all, ps...)
			for n, w := range weights {
				share := float64(len(subs[n])) / float64(len(all))
				want := float64(w) / 6
				if share < want-0.07 || share > want+0.07 {
					t.Errorf("%s (weight %d) owns %.3f of the keys, want about %.3f", n, w, share, want)
				}
			}
		})
	}
}

func TestWeightCapability(t *testing.T) {
	t.Parallel()
	tests := []struct {
		caps    servicegroup.Capabilities
		want    int
		wantErr bool
	}{
		{nil, 1, false},
		{servicegroup.Capabilities{"weight": int64(3)}, 3, false},
		{servicegroup.Capabilities{"weight": uint64(2)}, 2, false},
		{servicegroup.Capabilities{"weight": 4.0}, 4, false},
		{servicegroup.Capabilities{"weight": nil}, 1, false},
		{servicegroup.Capabilities{"weight": int64(0)}, 1, true},
		{servicegroup.Capabilities{"weight": int64(-2)}, 1, true},
		{servicegroup.Capabilities{"weight": 2.5}, 1, true},
		{servicegroup.Capabilities{"weight": "2"}, 1, true},
		{servicegroup.Capabilities{"weight": int64(1 << 40)}, hashring.MaxWeight, true},
	}
	for _, tt := range tests {
		got, err := Weight(tt.caps)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("Weight(%v) = %d, %v; want %d, error %v", tt.caps, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestBadWeightIsIgnored(t *testing.T) {
	t.Parallel()
	url := newURL(t)
	a := open(t, url, "a")
	join(t, a, "g", servicegroup.Capabilities{"weight": "heavy"})
	b := open(t, url, "b")
	join(t, b, "g", servicegroup.Capabilities{"weight": int64(-1)})
	p := newPartitioner(t, a, "g")
	if got := p.Weights(); got["a"] != 1 || got["b"] != 1 || len(got) != 2 {
		t.Fatalf("weights %v, want a=1 b=1", got)
	}
}

func TestNotAMemberOwnsNothing(t *testing.T) {
	t.Parallel()
	url := newURL(t)
	member := open(t, url, "member")
	join(t, member, "g", nil)
	observer := open(t, url, "observer")
	p := newPartitioner(t, observer, "g")
	all := keys(100)
	if got := p.Subset(all); len(got) != 0 {
		t.Fatalf("a member outside the group owns %v", got)
	}
	if got := p.Owners([]byte("k"), 1); !slices.Equal(got, []string{"member"}) {
		t.Fatalf("Owners = %v, want [member]", got)
	}
	// Once it joins it gets its share, without asking.
	join(t, observer, "g", nil)
	waitMembers(t, []string{"member", "observer"}, p)
	if got := p.Subset(all); len(got) == 0 {
		t.Fatal("joined but owns nothing")
	}
}

func TestLeftForUnseenMember(t *testing.T) {
	t.Parallel()
	url := newURL(t)
	sg := open(t, url, "a")
	join(t, sg, "g", nil)
	p := newPartitioner(t, sg, "g")
	if got := p.Members(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("members %v", got)
	}
	// A member that joins and leaves between two watch polls is never
	// seen at all; the partitioner stays correct.
	ghost := open(t, url, "ghost")
	join(t, ghost, "g", nil)
	if err := ghost.Leave(context.Background(), "g"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	waitMembers(t, []string{"a"}, p)
}

func TestWatchIsRecreated(t *testing.T) {
	t.Parallel()
	url := newURL(t)
	ctx := context.Background()
	x := open(t, url, "x")
	join(t, x, "g", nil)
	observer := open(t, url, "observer")
	p := newPartitioner(t, observer, "g")
	waitMembers(t, []string{"x"}, p)
	// Delete the group out of band: the watch ends with ErrGroupNotFound.
	if err := x.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := observer.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, []string{}, p)
	time.Sleep(100 * time.Millisecond)
	join(t, x, "g", nil)
	waitMembers(t, []string{"x"}, p)
}

func TestCloseStops(t *testing.T) {
	t.Parallel()
	url := newURL(t)
	sg := open(t, url, "a")
	join(t, sg, "g", nil)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := New(ctx, sg, "g")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	p.Close()
	p.Close()
	if !p.Owns([]byte("k")) {
		t.Fatal("after Close it should answer from the last member set")
	}
	if _, err := New(context.Background(), sg, "missing"); err == nil {
		t.Fatal("New on a missing group succeeded")
	}
	if _, err := New(context.Background(), sg, "g", WithAlgorithm("jump")); err == nil {
		t.Fatal("New with an unknown algorithm succeeded")
	}
}
