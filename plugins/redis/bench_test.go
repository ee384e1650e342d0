package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/redis"
	"github.com/musterhq/muster/servicegroup/driver"
)

func benchOpen(b *testing.B, url, member string) driver.Driver {
	b.Helper()
	d, err := redis.Open(context.Background(), driver.Options{URL: url, Member: member, TTL: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

// benchGroup opens an observer and n members m0.. joined to group g, each
// its own session, and returns the observer.
func benchGroup(b *testing.B, n int) driver.Driver {
	b.Helper()
	ctx := context.Background()
	url := nsURL(b)
	obs := benchOpen(b, url, "obs")
	if err := obs.CreateGroup(ctx, "g"); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := benchOpen(b, url, fmt.Sprint("m", i)).Join(ctx, "g", []byte{0x80}); err != nil {
			b.Fatal(err)
		}
	}
	return obs
}

func BenchmarkMembers(b *testing.B) {
	for _, n := range []int{1, 200} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx := context.Background()
			obs := benchGroup(b, n)
			b.ResetTimer()
			for b.Loop() {
				if ms, err := obs.Members(ctx, "g"); err != nil || len(ms) != n {
					b.Fatalf("%d members, %v", len(ms), err)
				}
			}
		})
	}
}

func BenchmarkHeartbeat(b *testing.B) {
	d := benchOpen(b, nsURL(b), "m")
	ctx := context.Background()
	for b.Loop() {
		if err := d.Heartbeat(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLockUnlock(b *testing.B) {
	d := benchOpen(b, nsURL(b), "m")
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

// BenchmarkMember reads one member of a group of 1 and of 200
// (driver.MemberGetter, what IsUp costs): its cost must not grow with the
// group.
func BenchmarkMember(b *testing.B) {
	for _, n := range []int{1, 200} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx := context.Background()
			obs := benchGroup(b, n)
			getter := obs.(driver.MemberGetter)
			b.ResetTimer()
			for b.Loop() {
				if _, err := getter.Member(ctx, "g", "m0"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
