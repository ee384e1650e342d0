package hashring

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var algorithms = []Algorithm{Default, Tooz}

func names(prefix string, n int) []Node {
	ns := make([]Node, n)
	for i := range ns {
		ns[i] = Node{Name: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return ns
}

func keys(n int) [][]byte {
	ks := make([][]byte, n)
	for i := range ks {
		ks[i] = fmt.Appendf(nil, "key-%d", i)
	}
	return ks
}

func mustNew(t testing.TB, alg Algorithm, ns []Node) *Ring {
	t.Helper()
	r, err := New(alg, ns)
	if err != nil {
		t.Fatalf("New(%s): %v", alg, err)
	}
	return r
}

func owners(r *Ring, ks [][]byte) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i], _ = r.Owner(k)
	}
	return out
}

func TestOwnerIsAFunctionOfTheSet(t *testing.T) {
	ks := keys(20000)
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			ns := names("node", 30)
			ns[3].Weight, ns[7].Weight = 3, 2
			a := owners(mustNew(t, alg, ns), ks)
			shuffled := slices.Clone(ns)
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) {
				shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
			})
			b := owners(mustNew(t, alg, shuffled), ks)
			if !slices.Equal(a, b) {
				t.Fatal("the order of the nodes changed the owners")
			}
		})
	}
}

// TestDefaultIsStable pins the Default algorithm: processes running
// different versions of muster must keep agreeing on owners, so any change
// here is a breaking change that needs a new Algorithm name.
func TestDefaultIsStable(t *testing.T) {
	r := mustNew(t, Default, []Node{{Name: "alpha"}, {Name: "beta", Weight: 2}, {Name: "gamma"}, {Name: "delta"}})
	want := []string{
		"beta", "gamma", "beta", "beta", "alpha", "gamma", "alpha", "alpha",
		"gamma", "delta", "beta", "gamma", "beta", "gamma", "alpha", "beta",
	}
	got := owners(r, keys(len(want)))
	if !slices.Equal(got, want) {
		t.Fatalf("owners changed:\n got %q\nwant %q", got, want)
	}

	// And a digest of many more, with a weight.
	ns := names("node", 50)
	ns[7].Weight = 3
	digest := fmt.Sprintf("%x", sha256.Sum256([]byte(strings.Join(owners(mustNew(t, Default, ns), keys(100000)), ","))))
	const pinned = "3df942e287caf9f4552dedfe460a08da0b08a71bbd1b8e91cb0c341e686ebc2d"
	if digest != pinned {
		t.Fatalf("owners of 100,000 keys changed: digest %s, was %s", digest, pinned)
	}
}

func TestEmptyRing(t *testing.T) {
	for _, alg := range algorithms {
		r := mustNew(t, alg, nil)
		if o, ok := r.Owner([]byte("x")); ok || o != "" {
			t.Errorf("%s: Owner on empty ring = %q, %v", alg, o, ok)
		}
		if got := r.Owners([]byte("x"), 3); len(got) != 0 {
			t.Errorf("%s: Owners on empty ring = %q", alg, got)
		}
		if got := r.Without("x"); got != r {
			t.Errorf("%s: Without an unknown member built a new ring", alg)
		}
		r2, err := r.With(Node{Name: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := r2.Owner([]byte("x")); !ok || o != "a" {
			t.Errorf("%s: Owner on {a} = %q, %v", alg, o, ok)
		}
	}
}

// TestAddMovesKeysOnlyToNewMember checks the first half of consistency and
// that the share moved is close to 1/(N+1).
func TestAddMovesKeysOnlyToNewMember(t *testing.T) {
	ks := keys(100000)
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			ns := names("node", 40)
			before := owners(mustNew(t, alg, ns), ks)
			after := owners(mustNew(t, alg, append(ns, Node{Name: "newcomer"})), ks)
			moved := 0
			for i := range ks {
				if before[i] == after[i] {
					continue
				}
				moved++
				if after[i] != "newcomer" {
					t.Fatalf("key %s moved from %s to %s, not to the new member", ks[i], before[i], after[i])
				}
			}
			ratio := float64(moved) / (float64(len(ks)) / 41)
			t.Logf("moved %d keys, %.3f of the ideal", moved, ratio)
			// tooz's 32 points make its share vary by about 18%.
			lo, hi := 0.9, 1.1
			if alg == Tooz {
				lo, hi = 0.4, 1.6
			}
			if ratio < lo || ratio > hi {
				t.Errorf("moved %.3f of the ideal 1/(N+1), want within [%v, %v]", ratio, lo, hi)
			}
		})
	}
}

func TestRemoveMovesOnlyItsKeys(t *testing.T) {
	ks := keys(100000)
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			ns := names("node", 40)
			before := owners(mustNew(t, alg, ns), ks)
			gone := ns[17].Name
			after := owners(mustNew(t, alg, slices.Delete(slices.Clone(ns), 17, 18)), ks)
			for i := range ks {
				if (before[i] != after[i]) != (before[i] == gone) {
					t.Fatalf("key %s: owner %s before, %s after %s left", ks[i], before[i], after[i], gone)
				}
			}
		})
	}
}

func TestWeightsAreProportional(t *testing.T) {
	ks := keys(300000)
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			r := mustNew(t, alg, []Node{{Name: "a", Weight: 1}, {Name: "b", Weight: 2}, {Name: "c", Weight: 3}})
			count := map[string]int{}
			for _, o := range owners(r, ks) {
				count[o]++
			}
			// Default's shares are within a percent or two; tooz's 32*weight
			// points only within ten percent or so.
			tol := 0.02
			if alg == Tooz {
				tol = 0.1
			}
			for name, want := range map[string]float64{"a": 1.0 / 6, "b": 2.0 / 6, "c": 3.0 / 6} {
				got := float64(count[name]) / float64(len(ks))
				t.Logf("%s: %.4f (ideal %.4f)", name, got, want)
				if got < want*(1-tol) || got > want*(1+tol) {
					t.Errorf("%s gets %.4f of the keys, want %.4f ± %.0f%%", name, got, want, tol*100)
				}
			}
		})
	}
}

// TestSubsetsPartitionTheKeys is the conformance form of "one owner per
// key": the members' subsets are disjoint and cover the keys.
func TestSubsetsPartitionTheKeys(t *testing.T) {
	ks := keys(20000)
	for _, alg := range algorithms {
		r := mustNew(t, alg, names("m", 7))
		subsets := map[string]map[string]bool{}
		for _, n := range r.Nodes() {
			subsets[n.Name] = map[string]bool{}
			for _, k := range ks {
				if o, _ := r.Owner(k); o == n.Name {
					subsets[n.Name][string(k)] = true
				}
			}
		}
		for _, k := range ks {
			holders := 0
			for _, s := range subsets {
				if s[string(k)] {
					holders++
				}
			}
			if holders != 1 {
				t.Fatalf("%s: key %s is in %d subsets", alg, k, holders)
			}
		}
	}
}

func TestOwners(t *testing.T) {
	ks := keys(3000)
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			ns := names("n", 9)
			ns[2].Weight = 3
			r := mustNew(t, alg, ns)
			for _, k := range ks {
				all := r.Owners(k, 100)
				if len(all) != len(ns) {
					t.Fatalf("Owners(%s, 100) = %q, want all %d members", k, all, len(ns))
				}
				if len(slices.Compact(slices.Sorted(slices.Values(all)))) != len(all) {
					t.Fatalf("Owners(%s) has duplicates: %q", k, all)
				}
				if o, _ := r.Owner(k); o != all[0] {
					t.Fatalf("Owners(%s)[0] = %s, Owner = %s", k, all[0], o)
				}
				// Fewer replicas are a prefix of the preference order.
				for n := range 4 {
					if got := r.Owners(k, n); !slices.Equal(got, all[:n]) {
						t.Fatalf("Owners(%s, %d) = %q, want %q", k, n, got, all[:n])
					}
				}
				// Ignoring members drops them from the order.
				ignore := []string{all[0], all[2], "not-a-member"}
				want := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return slices.Contains(ignore, s) })
				if got := r.Owners(k, 3, ignore...); !slices.Equal(got, want[:3]) {
					t.Fatalf("Owners(%s, 3, %q) = %q, want %q", k, ignore, got, want[:3])
				}
			}
			if got := r.Owners(ks[0], 2, r.Owners(ks[0], 100)...); len(got) != 0 {
				t.Errorf("Owners ignoring every member = %q", got)
			}
			if got := r.Owners(ks[0], -1); len(got) != 0 {
				t.Errorf("Owners(-1) = %q", got)
			}
		})
	}
}

// TestIgnoreIsFailover checks that the first member after the ignored ones
// is the owner the key gets once they leave.
func TestIgnoreIsFailover(t *testing.T) {
	ks := keys(5000)
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			ns := names("n", 25)
			ns[4].Weight = 2
			r := mustNew(t, alg, ns)
			down := []string{"n-4", "n-11", "n-12"}
			gone := r
			for _, d := range down {
				gone = gone.Without(d)
			}
			for _, k := range ks {
				want, _ := gone.Owner(k)
				if got := r.Owners(k, 1, down...); len(got) != 1 || got[0] != want {
					t.Fatalf("key %s: Owners ignoring %q = %q, owner without them = %s", k, down, got, want)
				}
			}
		})
	}
}

func TestWithAndWithoutMatchNew(t *testing.T) {
	ks := keys(2000)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			ns := names("member", 60)
			for i := range ns {
				ns[i].Weight = 1 + rng.IntN(3)
			}
			r := mustNew(t, alg, ns)
			for step := range 12 {
				var next *Ring
				var err error
				switch step % 3 {
				case 0:
					next, err = r.With(Node{Name: fmt.Sprintf("joiner-%d", step), Weight: 1 + rng.IntN(2)})
				case 1:
					nodes := r.Nodes()
					next = r.Without(nodes[rng.IntN(len(nodes))].Name)
				case 2:
					nodes := r.Nodes()
					next, err = r.With(Node{Name: nodes[rng.IntN(len(nodes))].Name, Weight: 4})
				}
				if err != nil {
					t.Fatal(err)
				}
				fresh := mustNew(t, alg, next.Nodes())
				if !slices.Equal(owners(next, ks), owners(fresh, ks)) {
					t.Fatalf("step %d: updated ring differs from a new one", step)
				}
				if m, ok := next.impl.(*musterRing); ok && !slices.Equal(m.table, fresh.impl.(*musterRing).table) {
					t.Fatalf("step %d: updated table differs from a new one", step)
				}
				r = next
			}
		})
	}
}

func TestWithoutUnknownMember(t *testing.T) {
	for _, alg := range algorithms {
		r := mustNew(t, alg, names("n", 3))
		if r.Without("stranger") != r {
			t.Errorf("%s: Without an unknown member changed the ring", alg)
		}
	}
}

func TestBadInput(t *testing.T) {
	long := make([]Node, MaxNodes+1)
	for i := range long {
		long[i] = Node{Name: fmt.Sprint(i)}
	}
	for _, tc := range []struct {
		name  string
		alg   Algorithm
		nodes []Node
		want  error
	}{
		{"unknown algorithm", "ketama", names("n", 2), ErrUnknownAlgorithm},
		{"case matters", "Tooz", names("n", 2), ErrUnknownAlgorithm},
		{"empty name", Default, []Node{{Name: "a"}, {Name: ""}}, ErrInvalidNode},
		{"negative weight", Tooz, []Node{{Name: "a", Weight: -1}}, ErrInvalidNode},
		{"huge weight", Default, []Node{{Name: "a", Weight: MaxWeight + 1}}, ErrInvalidNode},
		{"min int weight", Default, []Node{{Name: "a", Weight: -1 << 63}}, ErrInvalidNode},
		{"duplicate", Default, []Node{{Name: "a"}, {Name: "b"}, {Name: "a", Weight: 2}}, ErrDuplicateNode},
		{"duplicate tooz", Tooz, []Node{{Name: "x"}, {Name: "x"}}, ErrDuplicateNode},
		{"too many", Default, long, ErrTooManyNodes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.alg, tc.nodes)
			if !errors.Is(err, tc.want) || r != nil {
				t.Fatalf("New = %v, %v; want error %v", r, err, tc.want)
			}
		})
	}
	r := mustNew(t, Default, names("n", 3))
	for _, n := range []Node{{Name: ""}, {Name: "z", Weight: -5}, {Name: "n-1", Weight: MaxWeight + 1}} {
		if got, err := r.With(n); !errors.Is(err, ErrInvalidNode) || got != nil {
			t.Errorf("With(%+v) = %v, %v; want ErrInvalidNode", n, got, err)
		}
	}
	// Odd but valid input never panics.
	odd := mustNew(t, "", []Node{{Name: "\x00"}, {Name: "\xff\xfe"}, {Name: "ünï"}, {Name: string(make([]byte, 1000))}})
	for _, k := range [][]byte{nil, {}, make([]byte, 1<<16), []byte("\xff")} {
		if _, ok := odd.Owner(k); !ok {
			t.Errorf("no owner for %q", k)
		}
		odd.Owners(k, 1<<30, "\x00", "")
	}
	if odd.Algorithm() != Default {
		t.Errorf("the empty Algorithm is %q, want Default", odd.Algorithm())
	}
}

// TestConcurrentUse reads one ring from many goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	ks := keys(500)
	for _, alg := range algorithms {
		r := mustNew(t, alg, names("n", 20))
		want := make([][]string, len(ks))
		for i, k := range ks {
			want[i] = r.Owners(k, 3, "n-3")
		}
		done := make(chan bool)
		for range 8 {
			go func() {
				ok := true
				for i, k := range ks {
					ok = ok && slices.Equal(r.Owners(k, 3, "n-3"), want[i])
					o, _ := r.Owner(k)
					ok = ok && o == r.Owners(k, 1)[0]
				}
				done <- ok
			}()
		}
		for range 8 {
			if !<-done {
				t.Errorf("%s: concurrent answers differ", alg)
			}
		}
	}
}
