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

// hideMember hides a backend's MemberGetter, so the core falls back to
// listing the group.
type hideMember struct{ driver.Driver }

// BenchmarkIsUp compares the core's IsUp with one-record reads
// (driver.MemberGetter) against listing the group, at 10 and 2,000 members.
func BenchmarkIsUp(b *testing.B) {
	for _, n := range []int{10, 2000} {
		u := fmt.Sprintf("memory://bench-isup-%d-%d", n, time.Now().UnixNano())
		ctx := context.Background()
		var raws []driver.Driver
		for i := range n {
			d, err := memory.Open(ctx, driver.Options{URL: u, Member: fmt.Sprintf("m%04d", i), TTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				_ = d.CreateGroup(ctx, "g")
			}
			if err := d.Join(ctx, "g", nil); err != nil {
				b.Fatal(err)
			}
			raws = append(raws, d)
		}
		for _, mode := range []struct {
			name string
			open driver.Factory
		}{
			{"member", memory.Open},
			{"list", func(ctx context.Context, o driver.Options) (driver.Driver, error) {
				d, err := memory.Open(ctx, o)
				return hideMember{d}, err
			}},
		} {
			b.Run(fmt.Sprintf("%s/members-%d", mode.name, n), func(b *testing.B) {
				sg, err := servicegroup.OpenDriver(ctx, servicegroup.Config{URL: u, Member: "reader"}, "memory", mode.open)
				if err != nil {
					b.Fatal(err)
				}
				defer sg.Close(ctx)
				for b.Loop() {
					if up, err := sg.IsUp(ctx, "g", "m0001"); err != nil || !up {
						b.Fatal(up, err)
					}
				}
			})
		}
		for _, d := range raws {
			_ = d.Close(ctx)
		}
	}
}
