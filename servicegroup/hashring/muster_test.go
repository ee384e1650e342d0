package hashring

import (
	"fmt"
	"testing"
)

// TestDefaultIsEven checks the spread at 100 members over a million keys,
// where sampling alone puts the busiest member about 2.5% above the mean.
func TestDefaultIsEven(t *testing.T) {
	if testing.Short() {
		t.Skip("a million keys")
	}
	r := mustNew(t, Default, names("node", 100))
	count := map[string]int{}
	key := make([]byte, 0, 16)
	const n = 1000000
	for i := range n {
		o, _ := r.Owner(fmt.Appendf(key[:0], "key-%d", i))
		count[o]++
	}
	peak := 0
	for _, c := range count {
		peak = max(peak, c)
	}
	ratio := float64(peak) / (n / 100)
	t.Logf("peak/mean %.4f", ratio)
	if ratio > 1.05 {
		t.Errorf("peak/mean = %.4f, want <= 1.05", ratio)
	}
}

func TestXXH64(t *testing.T) {
	for _, tc := range []struct {
		in   string
		seed uint64
		want uint64
	}{
		{"", 0, 0xef46db3751d8e999},
		{"a", 0, 0xd24ec4f1a98c6e5b},
		{"abc", 0, 0x44bc2cf5ad770999},
		{"Nobody inspects the spammish repetition", 0, 0xfbcea83c8a378bf1},
	} {
		if got := xxh64([]byte(tc.in), tc.seed); got != tc.want {
			t.Errorf("xxh64(%q, %d) = %#x, want %#x", tc.in, tc.seed, got, tc.want)
		}
	}
}
