package host_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup/driver"
)

// BenchmarkTransport measures what the plugin transport adds per call: the
// same file backend and directory, once in-process and once through its
// plugin; for the calls one session can set up alone, the same for the
// memory backend, whose calls do almost no work, so that its plugin case
// is the transport's cost; and stream-floor, a bare round trip on a Call
// stream of the file plugin's connection, the least any hot call costs.
// Besides ns/op (the mean) each reports p50-ns, the median call.
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
	// The memory plugin's store is its own: each memory session lists
	// itself as g1's one member.
	memOpts := driver.Options{URL: "memory://bench-transport", Member: "bench", TTL: time.Hour}
	memLocal, err := memory.Open(ctx, memOpts)
	if err != nil {
		b.Fatal(err)
	}
	defer memLocal.Close(ctx)
	memPlug, err := host.Config{Dir: pluginDir}.Factory("memory")(ctx, memOpts)
	if err != nil {
		b.Fatal(err)
	}
	defer memPlug.Close(ctx)
	for _, d := range []driver.Driver{memLocal, memPlug} {
		if err := d.CreateGroup(ctx, "g1"); err != nil {
			b.Fatal(err)
		}
		if err := d.Join(ctx, "g1", capsA); err != nil {
			b.Fatal(err)
		}
	}

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

	floor, stopFloor, err := host.StreamFloor(ctx, plug)
	if err != nil {
		b.Fatal(err)
	}
	defer stopFloor()
	b.Run("stream-floor", func(b *testing.B) { runP50(b, floor) })

	type side struct {
		name string
		d    driver.Driver
	}
	fileSides := []side{{"in-process", local}, {"plugin", plug}}
	allSides := append(slices.Clip(fileSides), side{"memory-in-process", memLocal}, side{"memory-plugin", memPlug})
	cases := []struct {
		name  string
		sides []side
		call  func(d driver.Driver) error
	}{
		{"heartbeat", allSides, func(d driver.Driver) error { return d.Heartbeat(ctx) }},
		{"members-1", allSides, membersOf("g1", 1)},
		{"members-10", fileSides, membersOf("g10", 10)},
		{"members-1000", fileSides, membersOf("g1000", 1000)},
		{"trylock-unlock", allSides, func(d driver.Driver) error {
			tok, err := d.TryLock(ctx, "bench")
			if err != nil {
				return err
			}
			return d.Unlock(ctx, "bench", tok)
		}},
	}
	for _, c := range cases {
		for _, s := range c.sides {
			b.Run(c.name+"/"+s.name, func(b *testing.B) {
				runP50(b, func() error { return c.call(s.d) })
			})
		}
	}
}

// runP50 runs call b.N times and reports the median call as p50-ns.
func runP50(b *testing.B, call func() error) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := call(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
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

// BenchmarkCallPath sets muster's hot calls through a plugin against the
// floor go-plugin imposes: stream-floor is a bare round trip on a Call
// stream of the memory plugin's own AutoMTLS connection, with none of
// muster's per-call work on either side. The memory plugin's calls do
// almost no work, so their excess over the floor is muster's; the file
// plugin's is mostly the file backend's, which file-in-process shows.
// Heartbeats carry a deadline, as servicegroup's do; Members calls none.
//
// Each iteration makes one call of every case, in a shuffled order, so
// that the machine's noise falls on all of them alike. Each case reports
// its median (<case>-p50-ns) and that over the floor's (<case>-x-floor);
// ns/op is one call of each.
func BenchmarkCallPath(b *testing.B) {
	ctx := context.Background()
	mem, err := host.Config{Dir: pluginDir}.Factory("memory")(ctx,
		driver.Options{URL: "memory://bench-call-path", Member: "bench", TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer mem.Close(ctx)
	fil, err := host.Config{Dir: pluginDir}.Factory("file")(ctx, opts(b.TempDir(), "bench", time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	defer fil.Close(ctx)
	local, err := file.Open(ctx, opts(b.TempDir(), "bench", time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close(ctx)
	for _, d := range []driver.Driver{mem, fil, local} {
		if err := d.CreateGroup(ctx, "g1"); err != nil {
			b.Fatal(err)
		}
		if err := d.Join(ctx, "g1", capsA); err != nil {
			b.Fatal(err)
		}
	}
	floor, stopFloor, err := host.StreamFloor(ctx, mem)
	if err != nil {
		b.Fatal(err)
	}
	defer stopFloor()

	// callCtx is the context of the call being timed: made before its
	// clock starts, as the caller's would be.
	var callCtx context.Context
	heartbeat := func(d driver.Driver) func() error {
		return func() error { return d.Heartbeat(callCtx) }
	}
	members := func(d driver.Driver) func() error {
		return func() error { return membersOf("g1", 1)(d) }
	}
	cases := []struct {
		name string
		call func() error
	}{
		{"stream-floor", floor},
		{"memory-heartbeat", heartbeat(mem)},
		{"memory-members-1", members(mem)},
		{"file-heartbeat", heartbeat(fil)},
		{"file-members-1", members(fil)},
		{"file-in-process-heartbeat", heartbeat(local)},
		{"file-in-process-members-1", members(local)},
	}
	lat := make([][]time.Duration, len(cases))
	for i := range lat {
		lat[i] = make([]time.Duration, 0, b.N)
	}
	// A fresh order each iteration: in a fixed cycle, even a rotating one,
	// each case would always follow the same one and pay for its wake.
	order := make([]int, len(cases))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, k := range order {
			var cancel context.CancelFunc
			callCtx, cancel = context.WithTimeout(ctx, time.Minute)
			start := time.Now()
			err := cases[k].call()
			lat[k] = append(lat[k], time.Since(start))
			cancel()
			if err != nil {
				b.Fatalf("%s: %v", cases[k].name, err)
			}
		}
	}
	b.StopTimer()
	p50 := make([]float64, len(cases))
	for k, l := range lat {
		slices.Sort(l)
		p50[k] = float64(l[len(l)/2].Nanoseconds())
	}
	for k, c := range cases {
		b.ReportMetric(p50[k], c.name+"-p50-ns")
		if k > 0 {
			b.ReportMetric(p50[k]/p50[0], c.name+"-x-floor")
		}
	}
}
