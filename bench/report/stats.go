package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// samples is a list of measured durations.
type samples []time.Duration

// quantile is the q-th quantile (0..1) by nearest rank; 0 when empty.
func (s samples) quantile(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(math.Ceil(q*float64(len(c)))) - 1 // nearest rank
	if i >= len(c) {
		i = len(c) - 1
	}
	if i < 0 {
		i = 0
	}
	return c[i]
}

func (s samples) median() time.Duration { return s.quantile(0.5) }
func (s samples) p99() time.Duration    { return s.quantile(0.99) }

// ms formats d in milliseconds with 3 significant decimals.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return "0"
	case f < 0.1:
		return fmt.Sprintf("%.4f", f)
	case f < 10:
		return fmt.Sprintf("%.3f", f)
	case f < 1000:
		return fmt.Sprintf("%.1f", f)
	}
	return fmt.Sprintf("%.0f", f)
}

// ratio formats a/b ("—" when b is 0).
func ratio(a, b time.Duration) string {
	if b <= 0 || a <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// table is one markdown table.
type table struct {
	title string
	note  string
	head  []string
	rows  [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// markdown renders t, title and note first.
func (t *table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", t.title)
	if t.note != "" {
		fmt.Fprintf(&b, "%s\n\n", t.note)
	}
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	line := func(cells []string) {
		b.WriteString("|")
		for i := range t.head {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			b.WriteString(" " + esc(c) + " |")
		}
		b.WriteString("\n")
	}
	line(t.head)
	b.WriteString("|")
	for range t.head {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		line(r)
	}
	b.WriteString("\n")
	return b.String()
}

// verdict is "met" or "MISSED".
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// A ratio near its target is sampled more. Its verdict turns on the
// noise of the ratio, which five times the samples shrinks by more than
// half, so a re-run reads the same verdict far more often; a ratio far
// from its target keeps its verdict at the first count.
const (
	nearBand = 1.2 // within target÷1.2 .. target×1.2
	nearMore = 5   // times the first count of samples
)

// nearTarget reports whether median(a) ÷ median(b) is near target.
func nearTarget(a, b samples, target float64) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	r := float64(a.median()) / float64(b.median())
	return r >= target/nearBand && r <= target*nearBand
}

// nearN is the count of samples of a ratio near its target.
func nearN(n int) int { return n * nearMore }
