package hashring

import (
	"slices"
	"strings"
	"testing"
)

// FuzzRing builds rings from arbitrary names and weights and checks that
// nothing panics and the answers are members.
func FuzzRing(f *testing.F) {
	f.Add("a,b,c", []byte{1, 2, 3}, []byte("key"), 2, "b")
	f.Add(",,", []byte{}, []byte{}, 0, "")
	f.Add("x", []byte{255}, []byte{0xff, 0}, -7, "x")
	f.Add("é,\x00,\xff", []byte{0, 0, 9}, make([]byte, 100), 1<<20, "\x00")
	f.Fuzz(func(t *testing.T, list string, weights []byte, key []byte, replicas int, ignore string) {
		var ns []Node
		for i, name := range strings.Split(list, ",") {
			w := 1
			if i < len(weights) {
				w = int(weights[i]%8) - 1 // -1 is invalid
			}
			ns = append(ns, Node{Name: name, Weight: w})
		}
		for _, alg := range algorithms {
			r, err := New(alg, ns)
			if err != nil {
				continue
			}
			members := r.Nodes()
			isMember := func(s string) bool {
				return slices.ContainsFunc(members, func(n Node) bool { return n.Name == s })
			}
			if o, ok := r.Owner(key); ok != (len(members) > 0) || ok && !isMember(o) {
				t.Fatalf("%s: Owner = %q, %v for members %v", alg, o, ok, members)
			}
			got := r.Owners(key, replicas, ignore)
			if len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) || slices.Contains(got, ignore) {
				t.Fatalf("%s: Owners = %q", alg, got)
			}
			for _, o := range got {
				if !isMember(o) {
					t.Fatalf("%s: Owners gave %q, not a member", alg, o)
				}
			}
		}
	})
}
