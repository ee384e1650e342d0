package main

import (
	"strings"
	"testing"
	"time"
)

func TestQuantiles(t *testing.T) {
	var s samples
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	if got := s.median(); got != 50*time.Millisecond {
		t.Errorf("median = %v, want 50ms", got)
	}
	if got := s.p99(); got != 99*time.Millisecond {
		t.Errorf("p99 = %v, want 99ms", got)
	}
	if got := (samples{}).median(); got != 0 {
		t.Errorf("median of none = %v", got)
	}
	if got := (samples{3, 1, 2}).median(); got != 2 {
		t.Errorf("median of 3 = %v, want the middle one", got)
	}
	if s[0] != time.Millisecond {
		t.Error("quantile sorted its receiver")
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		13 * time.Microsecond:   "0.0130",
		1400 * time.Microsecond: "1.400",
		25 * time.Millisecond:   "25.0",
		3 * time.Second:         "3000",
	} {
		if got := ms(d); got != want {
			t.Errorf("ms(%v) = %q, want %q", d, got, want)
		}
	}
	if got := ratio(3*time.Millisecond, 2*time.Millisecond); got != "1.50×" {
		t.Errorf("ratio = %q", got)
	}
	if got := ratio(time.Millisecond, 0); got != "—" {
		t.Errorf("ratio by 0 = %q", got)
	}
}

func TestTable(t *testing.T) {
	tb := table{title: "T", head: []string{"a", "b"}}
	tb.add("1", "x|y")
	got := tb.markdown()
	want := "### T\n\n| a | b |\n|---|---|\n| 1 | x\\|y |\n\n"
	if got != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(got, "x\\|y") {
		t.Error("pipe not escaped")
	}
}

func TestNearTarget(t *testing.T) {
	raw := samples{10, 10, 10}
	for _, c := range []struct {
		a    samples
		want bool
	}{
		{samples{13, 13, 13}, true},  // at the target
		{samples{11, 11, 11}, true},  // 1.1 ≥ 1.3 ÷ 1.2
		{samples{15, 15, 15}, true},  // 1.5 ≤ 1.3 × 1.2
		{samples{10, 10, 10}, false}, // 1.0: met whatever the noise
		{samples{20, 20, 20}, false}, // 2.0: missed whatever the noise
		{nil, false},
	} {
		if got := nearTarget(c.a, raw, 1.3); got != c.want {
			t.Errorf("nearTarget(%v ÷ %v, 1.3) = %v, want %v", c.a, raw, got, c.want)
		}
	}
	if nearTarget(raw, nil, 1.3) {
		t.Error("near with no samples to compare with")
	}
}

func TestMode(t *testing.T) {
	for _, tc := range []struct {
		in   []int64
		want int64
	}{
		{[]int64{3}, 3},
		{[]int64{13, 3, 10, 3, 8, 3}, 3},    // most windows polluted, each differently
		{[]int64{5, 5, 3, 3}, 3},            // a tie: the smaller
		{[]int64{2, 9, 9, 9, 2, 11, 12}, 9}, // the recurring count, even if larger
	} {
		if got := mode(tc.in); got != tc.want {
			t.Errorf("mode(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
