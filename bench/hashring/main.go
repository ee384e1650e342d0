// Command hashring compares muster's hash ring with tooz's (as muster
// reproduces it) and with the consistent-hashing libraries Go programs
// commonly use. It prints one table; see README.md.
package main

import (
	"fmt"
	"hash/crc32"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
	"github.com/dgryski/go-rendezvous"
	"github.com/golang/groupcache/consistenthash"
	"github.com/musterhq/muster/servicegroup/hashring"
)

const (
	numKeys    = 1000000
	smallRing  = 100
	largeRing  = 1000
	lookupKeys = 1 << 16
	rebuildRun = 9 // timed runs of each membership change; the median is shown
)

// locator is one built ring of one library.
type locator interface {
	locate(key []byte, skey string) string
}

// library adapts one implementation. add and remove return a ring for the
// new member set from r, the way the library does it (incrementally where it
// can); they may modify r.
type library struct {
	name   string
	build  func(members []string) locator
	add    func(r locator, members []string, m string) locator
	remove func(r locator, members []string, m string) locator
	note   string
}

func main() {
	keys, skeys := makeKeys(numKeys)
	fmt.Printf("hashring comparison: %d keys, Go %s, %s/%s, GOMAXPROCS %d%s\n\n",
		numKeys, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), loadAverage())
	rows := [][]string{{
		"ring", "peak/mean @100", "add: moved/ideal", "add: all to new", "remove: moved/ideal",
		"remove: only its keys", "ns/lookup @100", "ns/lookup @1000", "ms add @1000", "ms remove @1000", "ms new @1000",
	}}
	var notes []string
	for _, lib := range libraries() {
		fmt.Fprintf(os.Stderr, "measuring %s...\n", lib.name)
		rows = append(rows, measure(lib, keys, skeys))
		if lib.note != "" {
			notes = append(notes, lib.name+": "+lib.note)
		}
	}
	printTable(rows)
	fmt.Println()
	for _, n := range notes {
		fmt.Println("- " + n)
	}
}

func measure(lib library, keys [][]byte, skeys []string) []string {
	members := memberNames(smallRing)
	base := lib.build(members)
	before := owners(base, keys, skeys)

	// Spread at 100 members.
	count := map[string]int{}
	for _, o := range before {
		count[o]++
	}
	peak := 0
	for _, c := range count {
		peak = max(peak, c)
	}
	spread := float64(peak) / (float64(len(keys)) / smallRing)

	// A member joins: how many keys move, and do they all go to it?
	newcomer := "node-new"
	after := owners(lib.add(lib.build(members), members, newcomer), keys, skeys)
	moved, toNew := 0, true
	for i := range keys {
		if before[i] != after[i] {
			moved++
			toNew = toNew && after[i] == newcomer
		}
	}
	addRatio := float64(moved) / (float64(len(keys)) / (smallRing + 1))

	// A member leaves: how many keys move, and are they all its own?
	leaver := members[37]
	after = owners(lib.remove(lib.build(members), members, leaver), keys, skeys)
	moved, onlyItsKeys := 0, true
	for i := range keys {
		if before[i] != after[i] {
			moved++
			onlyItsKeys = onlyItsKeys && before[i] == leaver
		} else if before[i] == leaver {
			onlyItsKeys = false // it is gone but still owns the key
		}
	}
	removeRatio := float64(moved) / (float64(len(keys)) / smallRing)

	large := memberNames(largeRing)
	return []string{
		lib.name,
		fmt.Sprintf("%.3f", spread),
		fmt.Sprintf("%.3f", addRatio),
		yesNo(toNew),
		fmt.Sprintf("%.3f", removeRatio),
		yesNo(onlyItsKeys),
		fmt.Sprintf("%.0f", lookupNs(lib.build(members), keys, skeys)),
		fmt.Sprintf("%.0f", lookupNs(lib.build(large), keys, skeys)),
		fmt.Sprintf("%.2f", rebuildMs(func() locator { return lib.build(large) }, func(r locator) {
			lib.add(r, large, newcomer)
		})),
		fmt.Sprintf("%.2f", rebuildMs(func() locator { return lib.build(large) }, func(r locator) {
			lib.remove(r, large, large[500])
		})),
		fmt.Sprintf("%.2f", rebuildMs(func() locator { return nil }, func(locator) {
			lib.build(large)
		})),
	}
}

func owners(r locator, keys [][]byte, skeys []string) []string {
	out := make([]string, len(keys))
	for i := range keys {
		out[i] = r.locate(keys[i], skeys[i])
	}
	return out
}

func lookupNs(r locator, keys [][]byte, skeys []string) float64 {
	res := testing.Benchmark(func(b *testing.B) {
		i := 0
		for b.Loop() {
			k := i & (lookupKeys - 1)
			r.locate(keys[k], skeys[k])
			i++
		}
	})
	return float64(res.T.Nanoseconds()) / float64(res.N)
}

// rebuildMs times change on fresh rings from setup and returns the median.
func rebuildMs(setup func() locator, change func(locator)) float64 {
	var ds []time.Duration
	for range rebuildRun {
		r := setup()
		runtime.GC()
		start := time.Now()
		change(r)
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Microseconds()) / 1000
}

func makeKeys(n int) ([][]byte, []string) {
	keys := make([][]byte, n)
	skeys := make([]string, n)
	for i := range n {
		skeys[i] = fmt.Sprintf("key-%d", i)
		keys[i] = []byte(skeys[i])
	}
	return keys, skeys
}

func memberNames(n int) []string {
	ns := make([]string, n)
	for i := range ns {
		ns[i] = fmt.Sprintf("node-%d", i)
	}
	return ns
}

// loadAverage reports the machine's load when it can: timings on a busy
// machine are not comparable with those on an idle one.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return ", load average " + strings.Join(f[:3], " ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printTable(rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len(c))
		}
	}
	line := func(row []string) {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = fmt.Sprintf("%-*s", widths[i], c)
		}
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
	line(rows[0])
	seps := make([]string, len(widths))
	for i, w := range widths {
		seps[i] = strings.Repeat("-", w)
	}
	fmt.Println("|-" + strings.Join(seps, "-|-") + "-|")
	for _, row := range rows[1:] {
		line(row)
	}
}

// The libraries.

func libraries() []library {
	return []library{
		hashringLibrary(hashring.Default, "muster (servicegroup/hashring, Default)",
			"add and remove are Ring.With and Ring.Without (identical to New on the new set)"),
		hashringLibrary(hashring.Tooz, "tooz mode (servicegroup/hashring, Tooz)",
			"bit-for-bit tooz.hashring.HashRing: md5, 32 points per member"),
		{
			name: "buraksezer/consistent v0.10.0",
			build: func(members []string) locator {
				ms := make([]consistent.Member, len(members))
				for i, m := range members {
					ms[i] = member(m)
				}
				return buraksezer{consistent.New(ms, buraksezerConfig)}
			},
			add: func(r locator, _ []string, m string) locator {
				r.(buraksezer).c.Add(member(m))
				return r
			},
			remove: func(r locator, _ []string, m string) locator {
				r.(buraksezer).c.Remove(m)
				return r
			},
			note: fmt.Sprintf("PartitionCount %d, ReplicationFactor %d, Load %.2f, xxhash; bounded loads re-deal partitions among old members on every change",
				buraksezerConfig.PartitionCount, buraksezerConfig.ReplicationFactor, buraksezerConfig.Load),
		},
		{
			name:  "golang/groupcache consistenthash",
			build: groupcacheBuild,
			add: func(_ locator, members []string, m string) locator {
				return groupcacheBuild(append(slices.Clone(members), m))
			},
			remove: func(_ locator, members []string, m string) locator {
				return groupcacheBuild(slices.DeleteFunc(slices.Clone(members), func(s string) bool { return s == m }))
			},
			note: fmt.Sprintf("%d replicas (groupcache's default), crc32; it has no Remove, so every change builds a new Map, as groupcache does", groupcacheReplicas),
		},
		{
			name: "dgryski/go-rendezvous",
			build: func(members []string) locator {
				return rendezvousRing{rendezvous.New(members, xxhash.Sum64String)}
			},
			add: func(r locator, _ []string, m string) locator {
				r.(rendezvousRing).r.Add(m)
				return r
			},
			remove: func(_ locator, members []string, m string) locator {
				return rendezvousRing{rendezvous.New(slices.DeleteFunc(slices.Clone(members), func(s string) bool { return s == m }), xxhash.Sum64String)}
			},
			note: "xxhash; lookups are O(members); its Remove indexes past the end of its slices (panics) at this version, so removal builds anew",
		},
	}
}

func hashringLibrary(alg hashring.Algorithm, name, note string) library {
	build := func(members []string) *hashring.Ring {
		ns := make([]hashring.Node, len(members))
		for i, m := range members {
			ns[i] = hashring.Node{Name: m}
		}
		r, err := hashring.New(alg, ns)
		if err != nil {
			panic(err)
		}
		return r
	}
	return library{
		name:  name,
		build: func(members []string) locator { return muster{build(members)} },
		add: func(r locator, _ []string, m string) locator {
			nr, err := r.(muster).r.With(hashring.Node{Name: m})
			if err != nil {
				panic(err)
			}
			return muster{nr}
		},
		remove: func(r locator, _ []string, m string) locator {
			return muster{r.(muster).r.Without(m)}
		},
		note: note,
	}
}

type muster struct{ r *hashring.Ring }

func (m muster) locate(key []byte, _ string) string {
	o, _ := m.r.Owner(key)
	return o
}

type member string

func (m member) String() string { return string(m) }

type xxhasher struct{}

func (xxhasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

var buraksezerConfig = consistent.Config{
	Hasher:            xxhasher{},
	PartitionCount:    7919,
	ReplicationFactor: 20,
	Load:              1.25,
}

type buraksezer struct{ c *consistent.Consistent }

func (b buraksezer) locate(key []byte, _ string) string { return b.c.LocateKey(key).String() }

const groupcacheReplicas = 50

type groupcacheRing struct{ m *consistenthash.Map }

func groupcacheBuild(members []string) locator {
	m := consistenthash.New(groupcacheReplicas, crc32.ChecksumIEEE)
	m.Add(members...)
	return groupcacheRing{m}
}

func (g groupcacheRing) locate(_ []byte, skey string) string { return g.m.Get(skey) }

type rendezvousRing struct{ r *rendezvous.Rendezvous }

func (r rendezvousRing) locate(_ []byte, skey string) string { return r.r.Lookup(skey) }
