package host_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
)

// BenchmarkTransport measures what the plugin transport adds per call: the
// same file backend and directory, once in-process and once through its
// plugin. Besides ns/op (the mean) it reports p50-ns, the median call.
func BenchmarkTransport(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	local, err := file.Open(ctx, opts(dir, "bench-local", time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close(ctx)
	plug, err := host.Config{Dir: pluginDir}.Factory("file")(ctx, opts(dir, "bench-plugin", time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	defer plug.Close(ctx)

	// Groups of 1, 10 and 1,000 live members, each member its own session.
	var members []driver.Driver
	defer func() {
		for _, m := range members {
			m.Close(ctx)
		}
	}()
	for _, n := range []int{1, 10, 1000} {
		group := fmt.Sprintf("g%d", n)
		if err := local.CreateGroup(ctx, group); err != nil {
			b.Fatal(err)
		}
		for i := range n {
			m, err := file.Open(ctx, opts(dir, fmt.Sprintf("member-%d-%d", n, i), time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			members = append(members, m)
			if err := m.Join(ctx, group, capsA); err != nil {
				b.Fatal(err)
			}
		}
	}

	cases := []struct {
		name string
		call func(d driver.Driver) error
	}{
		{"heartbeat", func(d driver.Driver) error { return d.Heartbeat(ctx) }},
		{"members-1", membersOf("g1", 1)},
		{"members-10", membersOf("g10", 10)},
		{"members-1000", membersOf("g1000", 1000)},
		{"trylock-unlock", func(d driver.Driver) error {
			tok, err := d.TryLock(ctx, "bench")
			if err != nil {
				return err
			}
			return d.Unlock(ctx, "bench", tok)
		}},
	}
	for _, c := range cases {
		for _, side := range []struct {
			name string
			d    driver.Driver
		}{{"in-process", local}, {"plugin", plug}} {
			b.Run(c.name+"/"+side.name, func(b *testing.B) {
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for range b.N {
					start := time.Now()
					if err := c.call(side.d); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			})
		}
	}
}

func membersOf(group string, n int) func(d driver.Driver) error {
	return func(d driver.Driver) error {
		ms, err := d.Members(context.Background(), group)
		if err == nil && len(ms) != n {
			err = fmt.Errorf("%d members in %s, want %d", len(ms), group, n)
		}
		return err
	}
}
