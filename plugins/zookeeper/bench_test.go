package zookeeper_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/musterhq/muster/plugins/zookeeper"
	"github.com/musterhq/muster/servicegroup/driver"
)

func benchOpen(b *testing.B, url, member string) driver.Driver {
	b.Helper()
	d, err := zookeeper.Open(context.Background(), driver.Options{URL: url, Member: member, TTL: time.Minute, DialTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

func BenchmarkMembers(b *testing.B) {
	for _, n := range []int{1, 200} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			url := freshURL(b)
			ctx := context.Background()
			r := benchOpen(b, url, "reader")
			if err := r.CreateGroup(ctx, "g"); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				if err := benchOpen(b, url, fmt.Sprintf("m%03d", i)).Join(ctx, "g", []byte{0x81, 0xa1, 'k', 0x01}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				if ms, err := r.Members(ctx, "g"); err != nil || len(ms) != n {
					b.Fatalf("%d members, %v", len(ms), err)
				}
			}
		})
	}
}

func BenchmarkHeartbeat(b *testing.B) {
	d := benchOpen(b, freshURL(b), "m")
	for b.Loop() {
		if err := d.Heartbeat(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTryLockUnlock(b *testing.B) {
	d := benchOpen(b, freshURL(b), "m")
	ctx := context.Background()
	for b.Loop() {
		tok, err := d.TryLock(ctx, "l")
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Unlock(ctx, "l", tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawGetChildren is a bare go-zookeeper GetChildren, for scale.
func BenchmarkRawGetChildren(b *testing.B) {
	c, _, err := zk.Connect([]string{server(b).Addr()}, time.Minute, zk.WithLogInfo(false))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for b.Loop() {
		if _, _, err := c.Children("/"); err != nil {
			b.Fatal(err)
		}
	}
}
