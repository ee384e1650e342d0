package servicegroup_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	_ "github.com/musterhq/muster/plugins/etcd" // registers etcd:// in-process
	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// buildFilePlugin builds muster-plugin-file (without -race) into a temp
// dir for one benchmark.
func buildFilePlugin(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, host.BinaryName("file")),
		"github.com/musterhq/muster/plugins/file/cmd/muster-plugin-file")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("build the file plugin: %v", err)
	}
	return dir
}

// BenchmarkViewIsUp compares IsUp answered by a View with a direct IsUp
// (one backend read), on the file backend in-process and through its
// plugin, at 10 and 1,000 members. The members are raw in-process sessions
// with an hour's TTL; only the reader's ServiceGroup changes mode.
func BenchmarkViewIsUp(b *testing.B) {
	ctx := context.Background()
	pluginDir := buildFilePlugin(b)
	for _, n := range []int{10, 1000} {
		dir := b.TempDir()
		url := "file://" + dir
		var raws []driver.Driver
		for i := range n {
			d, err := file.Open(ctx, driver.Options{URL: url, Member: fmt.Sprintf("m%04d", i), TTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				if err := d.CreateGroup(ctx, "g"); err != nil {
					b.Fatal(err)
				}
			}
			if err := d.Join(ctx, "g", []byte{0x80}); err != nil {
				b.Fatal(err)
			}
			raws = append(raws, d)
		}
		for _, mode := range []servicegroup.Mode{servicegroup.ModeInProcess, servicegroup.ModePlugin} {
			sg, err := servicegroup.Open(ctx, servicegroup.Config{URL: url, Member: "reader", Mode: mode, PluginDir: pluginDir})
			if err != nil {
				b.Fatal(err)
			}
			v, err := sg.View(ctx, "g")
			if err != nil {
				b.Fatal(err)
			}
			if err := v.Synced(ctx); err != nil {
				b.Fatal(err)
			}
			target := fmt.Sprintf("m%04d", n/2)
			b.Run(fmt.Sprintf("%s/members-%d/view", mode, n), func(b *testing.B) {
				for b.Loop() {
					if up, err := v.IsUp(target); err != nil || !up {
						b.Fatal(up, err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/members-%d/direct", mode, n), func(b *testing.B) {
				for b.Loop() {
					if up, err := sg.IsUp(ctx, "g", target); err != nil || !up {
						b.Fatal(up, err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/members-%d/view-getall", mode, n), func(b *testing.B) {
				for b.Loop() {
					if up, err := v.GetAll(); err != nil || len(up) != n {
						b.Fatal(len(up), err)
					}
				}
			})
			v.Close()
			sg.Close(ctx)
		}
		for _, d := range raws {
			_ = d.Close(ctx)
		}
	}
}

// BenchmarkViewFreshness measures how long a change made through one
// ServiceGroup takes to show in a View held by ANOTHER ServiceGroup: from
// the return of Join, ForceDown (set), ForceDown (clear) and Leave to the
// view answering accordingly. Each op is one cycle of the four; it reports
// p50 and p99 per kind in milliseconds. Each change comes at a random
// point of the poll cycle (a random pause, off the clock, before it).
// Polled backends poll every 100ms
// (WatchInterval); memory and etcd have native watches. Run with a fixed
// count for stable percentiles:
//
//	go test -run '^$' -bench ViewFreshness -benchtime 100x ./servicegroup/
func BenchmarkViewFreshness(b *testing.B) {
	type backend struct {
		name string
		url  func(b *testing.B) string
	}
	backends := []backend{
		{"memory", func(b *testing.B) string { return fmt.Sprintf("memory://fresh-%d", time.Now().UnixNano()) }},
		{"file-polled", func(b *testing.B) string { return "file://" + b.TempDir() }},
		{"etcd-native", func(b *testing.B) string {
			srv, err := testserver.StartEtcd()
			if err != nil {
				b.Skipf("etcd: %v", err)
			}
			b.Cleanup(srv.Close)
			return "etcd://" + srv.Addr() + "/fresh"
		}},
		{"redis-polled", func(b *testing.B) string {
			srv, err := testserver.StartRedis()
			if err != nil {
				b.Skipf("redis: %v", err)
			}
			b.Cleanup(srv.Close)
			return "redis://" + srv.Addr()
		}},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			url := be.url(b)
			open := func(member string) *servicegroup.ServiceGroup {
				sg, err := servicegroup.Open(ctx, servicegroup.Config{URL: url, Member: member, Mode: servicegroup.ModeInProcess,
					WatchInterval: 100 * time.Millisecond})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { sg.Close(ctx) })
				return sg
			}
			obs, m := open("obs"), open("m")
			if err := obs.CreateGroup(ctx, "g"); err != nil {
				b.Fatal(err)
			}
			v, err := obs.View(ctx, "g")
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			// wait until the view says want for m, and returns how long.
			wait := func(want func(servicegroup.Member, error) bool) time.Duration {
				start := time.Now()
				for {
					ch := v.Changed()
					if want(v.Member("m")) {
						return time.Since(start)
					}
					select {
					case <-ch:
					case <-time.After(30 * time.Second):
						b.Fatal("the view did not reflect the change within 30s")
					}
				}
			}
			kinds := []string{"join", "force-down", "clear", "leave"}
			lat := map[string][]time.Duration{}
			steps := []func() error{
				func() error { return m.Join(ctx, "g", nil) },
				func() error { return obs.ForceDown(ctx, "g", "m", true) },
				func() error { return obs.ForceDown(ctx, "g", "m", false) },
				func() error { return m.Leave(ctx, "g") },
			}
			wants := []func(servicegroup.Member, error) bool{
				func(x servicegroup.Member, err error) bool { return err == nil && !x.ForcedDown },
				func(x servicegroup.Member, err error) bool { return err == nil && x.ForcedDown },
				func(x servicegroup.Member, err error) bool { return err == nil && !x.ForcedDown },
				func(_ servicegroup.Member, err error) bool { return errors.Is(err, servicegroup.ErrNotMember) },
			}
			for b.Loop() {
				for i, step := range steps {
					// At a random point of the poll cycle, not right after
					// the view's last poll.
					b.StopTimer()
					time.Sleep(rand.N(100 * time.Millisecond))
					b.StartTimer()
					if err := step(); err != nil {
						b.Fatal(kinds[i], err)
					}
					lat[kinds[i]] = append(lat[kinds[i]], wait(wants[i]))
				}
			}
			for _, k := range kinds {
				ds := lat[k]
				slices.Sort(ds)
				b.ReportMetric(ms(ds[len(ds)/2]), k+"-p50-ms")
				b.ReportMetric(ms(ds[min(len(ds)-1, len(ds)*99/100)]), k+"-p99-ms")
			}
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
