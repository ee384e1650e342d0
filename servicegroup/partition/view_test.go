package partition

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

// waitWeights waits until p sees want.
func waitWeights(t *testing.T, p *Partitioner, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !equal(p.Weights(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s sees weights %v, want %v", p.Member(), p.Weights(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A member that raises its weight takes a larger share at once; the keys
// it gains come only from the others.
func TestWeightChangeRebalances(t *testing.T) {
	t.Parallel()
	url := newURL(t)
	a, b := open(t, url, "a"), open(t, url, "b")
	join(t, a, "g", nil)
	join(t, b, "g", nil)
	pa, pb := newPartitioner(t, a, "g"), newPartitioner(t, b, "g")
	waitWeights(t, pa, map[string]int{"a": 1, "b": 1})
	waitWeights(t, pb, map[string]int{"a": 1, "b": 1})
	all := keys(2000)
	before := checkSplit(t, all, pa, pb)
	if err := a.SetCapabilities(context.Background(), "g", servicegroup.Capabilities{WeightCapability: 3}); err != nil {
		t.Fatal(err)
	}
	waitWeights(t, pa, map[string]int{"a": 3, "b": 1})
	waitWeights(t, pb, map[string]int{"a": 3, "b": 1})
	after := checkSplit(t, all, pa, pb)
	if len(after["a"]) <= len(before["a"]) || len(after["a"]) < len(all)/2 {
		t.Fatalf("a owns %d of %d keys at weight 3 (had %d at weight 1)", len(after["a"]), len(all), len(before["a"]))
	}
	for _, k := range before["a"] {
		if !slices.Contains(after["a"], k) {
			t.Fatalf("a lost %q when its weight rose", k)
		}
	}
}

// A member forced down owns nothing; its keys go to the others, and come
// back when the mark is cleared.
func TestForceDownTakesAwayTheKeys(t *testing.T) {
	t.Parallel()
	url := newURL(t)
	ctx := context.Background()
	a, b := open(t, url, "a"), open(t, url, "b")
	join(t, a, "g", nil)
	join(t, b, "g", nil)
	pa, pb := newPartitioner(t, a, "g"), newPartitioner(t, b, "g")
	waitMembers(t, []string{"a", "b"}, pa, pb)
	all := keys(1000)
	before := checkSplit(t, all, pa, pb)
	if len(before["a"]) == 0 {
		t.Fatal("a owns nothing to start with")
	}
	select { // drain a Changed from the start
	case <-pb.Changed():
	default:
	}
	if err := b.ForceDown(ctx, "g", "a", true); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, []string{"b"}, pa, pb)
	select {
	case <-pb.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("Changed did not fire when a was forced down")
	}
	if got := pa.Subset(all); len(got) != 0 {
		t.Fatalf("forced-down a still owns %d keys", len(got))
	}
	if got := pb.Subset(all); len(got) != len(all) {
		t.Fatalf("b owns %d of %d keys with a forced down", len(got), len(all))
	}
	if up, err := pb.View().IsUp("a"); up || err != nil {
		t.Fatalf("the partitioner's view says a is up %v (%v)", up, err)
	}
	if err := b.ForceDown(ctx, "g", "a", false); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, []string{"a", "b"}, pa, pb)
	after := checkSplit(t, all, pa, pb)
	if !slices.Equal(after["a"], before["a"]) {
		t.Fatalf("a owns %d keys after the mark was cleared, %d before", len(after["a"]), len(before["a"]))
	}
}
