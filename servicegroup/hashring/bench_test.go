package hashring

import (
	"fmt"
	"testing"
)

func BenchmarkLookup(b *testing.B) {
	ks := keys(1 << 16)
	for _, alg := range algorithms {
		for _, n := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", alg, n), func(b *testing.B) {
				r := mustNew(b, alg, names("node", n))
				i := 0
				for b.Loop() {
					r.Owner(ks[i&(len(ks)-1)])
					i++
				}
			})
		}
	}
}

func BenchmarkOwners3(b *testing.B) {
	ks := keys(1 << 16)
	for _, alg := range algorithms {
		for _, n := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", alg, n), func(b *testing.B) {
				r := mustNew(b, alg, names("node", n))
				i := 0
				for b.Loop() {
					r.Owners(ks[i&(len(ks)-1)], 3)
					i++
				}
			})
		}
	}
}

// BenchmarkRebuild measures one membership change at 100 members (central
// agents) and 1,000: a member joining (With), leaving (Without), and
// building the ring anew.
func BenchmarkRebuild(b *testing.B) {
	for _, alg := range algorithms {
		for _, n := range []int{100, 1000} {
			ns := names("node", n)
			r := mustNew(b, alg, ns)
			leaver := ns[n/2].Name
			b.Run(fmt.Sprintf("%s/%d/With", alg, n), func(b *testing.B) {
				for b.Loop() {
					if _, err := r.With(Node{Name: "newcomer"}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/%d/Without", alg, n), func(b *testing.B) {
				for b.Loop() {
					r.Without(leaver)
				}
			})
			b.Run(fmt.Sprintf("%s/%d/New", alg, n), func(b *testing.B) {
				for b.Loop() {
					if _, err := New(alg, ns); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
