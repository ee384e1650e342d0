package etcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/musterhq/muster/plugins/etcd"
	"github.com/musterhq/muster/servicegroup/driver"
)

func benchOpen(b *testing.B, url, member string) driver.Driver {
	b.Helper()
	d, err := etcd.Open(context.Background(), driver.Options{URL: url, Member: member, TTL: time.Minute, DialTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

// BenchmarkMembers lists a group whose members heartbeat between reads
// (every read then asks TimeToLive for each) or not (cached).
func BenchmarkMembers(b *testing.B) {
	for _, n := range []int{1, 100} {
		for _, beating := range []bool{false, true} {
			b.Run(fmt.Sprintf("%d/beating=%v", n, beating), func(b *testing.B) {
				url := freshURL(b)
				ctx := context.Background()
				r := benchOpen(b, url, "reader")
				if err := r.CreateGroup(ctx, "g"); err != nil {
					b.Fatal(err)
				}
				ds := make([]driver.Driver, n)
				for i := range n {
					ds[i] = benchOpen(b, url, fmt.Sprintf("m%03d", i))
					if err := ds[i].Join(ctx, "g", []byte{0x81, 0xa1, 'k', 0x01}); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for b.Loop() {
					if beating {
						b.StopTimer()
						for _, d := range ds {
							if err := d.Heartbeat(ctx); err != nil {
								b.Fatal(err)
							}
						}
						b.StartTimer()
					}
					if ms, err := r.Members(ctx, "g"); err != nil || len(ms) != n {
						b.Fatalf("%d members, %v", len(ms), err)
					}
				}
			})
		}
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

// BenchmarkRawGet is a bare clientv3 prefix Get, for scale.
func BenchmarkRawGet(b *testing.B) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{server(b).Addr()}, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	for b.Loop() {
		if _, err := cli.Get(context.Background(), "tooz/groups/", clientv3.WithPrefix(), clientv3.WithKeysOnly()); err != nil {
			b.Fatal(err)
		}
	}
}
