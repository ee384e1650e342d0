package servicegroup_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// BenchmarkGetAll10k is the core's share of a GetAll of 10,000 members: the
// memory backend's own listing ("backend"), then GetAll over it, which
// decodes every member's capabilities and sorts them by id.
func BenchmarkGetAll10k(b *testing.B) {
	const n = 10000
	u := fmt.Sprintf("memory://bench-getall-%d", time.Now().UnixNano())
	ctx := context.Background()
	caps, err := driver.EncodeCapabilities(map[string]any{"zone": "a"})
	if err != nil {
		b.Fatal(err)
	}
	var raws []driver.Driver
	defer func() {
		for _, d := range raws {
			_ = d.Close(ctx)
		}
	}()
	for i := range n {
		// Ids out of order, as a Redis hash or ZooKeeper lists them.
		d, err := memory.Open(ctx, driver.Options{URL: u, Member: fmt.Sprintf("m%04d", (i*7919)%n), TTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		raws = append(raws, d)
		if i == 0 {
			if err := d.CreateGroup(ctx, "g"); err != nil {
				b.Fatal(err)
			}
		}
		if err := d.Join(ctx, "g", caps); err != nil {
			b.Fatal(err)
		}
	}
	sg, err := servicegroup.OpenDriver(ctx, servicegroup.Config{URL: u, Member: "reader"}, "memory", memory.Open)
	if err != nil {
		b.Fatal(err)
	}
	defer sg.Close(ctx)
	b.Run("backend", func(b *testing.B) {
		for b.Loop() {
			if ms, err := raws[0].Members(ctx, "g"); err != nil || len(ms) != n {
				b.Fatal(len(ms), err)
			}
		}
	})
	b.Run("GetAll", func(b *testing.B) {
		for b.Loop() {
			if ms, err := sg.GetAll(ctx, "g"); err != nil || len(ms) != n || ms[0].ID != "m0000" || ms[0].Capabilities["zone"] != "a" {
				b.Fatal(len(ms), err)
			}
		}
	})
}
