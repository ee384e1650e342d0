package partition

import (
	"fmt"
	"testing"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/hashring"
)

// Each membership change updates the ring incrementally where it can; the
// ring must be the one hashring.New builds on the same set, whatever the
// sequence of changes.
func TestRingFollowsChangesExactly(t *testing.T) {
	for _, alg := range []hashring.Algorithm{hashring.Default, hashring.Tooz} {
		t.Run(string(alg), func(t *testing.T) {
			p := &Partitioner{alg: alg, log: zap.NewNop(), changed: make(chan struct{}, 1)}
			weights := map[string]int{}
			steps := []func(){
				func() { weights["a"] = 1 },
				func() { weights["b"] = 2 },                  // one joins: With
				func() { weights["c"] = 1 },                  // With
				func() { weights["b"] = 3 },                  // a weight changes: With
				func() { delete(weights, "a") },              // one leaves: Without
				func() { weights["d"], weights["e"] = 1, 1 }, // two at once
				func() { delete(weights, "c"); weights["f"] = 2 },
				func() { // past the size up to which With builds anew
					for i := range 30 {
						weights[fmt.Sprint("agent-", i)] = 1
					}
				},
				func() { weights["g"], weights["h"], weights["i"], weights["j"] = 1, 1, 2, 1 }, // four joins: one by one
				func() { delete(weights, "agent-3"); delete(weights, "agent-17") },             // two leaves: one by one
				func() { delete(weights, "g"); weights["k"], weights["l"] = 1, 1 },             // two joins and a leave: New
				func() { weights["agent-7"] = 3 },                                              // a weight change
				func() { delete(weights, "h"); weights["agent-8"] = 2 },                        // a leave and a weight change: New
			}
			for i, step := range steps {
				step()
				p.set(maps(weights))
				var nodes []hashring.Node
				for id, w := range weights {
					nodes = append(nodes, hashring.Node{Name: id, Weight: w})
				}
				want, err := hashring.New(alg, nodes)
				if err != nil {
					t.Fatal(err)
				}
				for k := range 2000 {
					key := []byte(fmt.Sprintf("key-%d", k))
					got, _ := p.ring.Owner(key)
					exp, _ := want.Owner(key)
					if got != exp {
						t.Fatalf("step %d: key %s owned by %s, New says %s", i, key, got, exp)
					}
				}
			}
		})
	}
}
