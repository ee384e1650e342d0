package postgresql_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/postgresql"
	"github.com/musterhq/muster/servicegroup/driver"
)

func benchSession(b *testing.B, members int) (driver.Driver, func()) {
	ctx := context.Background()
	url := nsURL(b)
	d, err := postgresql.Open(ctx, driver.Options{URL: url, Member: "bench", TTL: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.CreateGroup(ctx, "g"); err != nil {
		b.Fatal(err)
	}
	others := make([]driver.Driver, 0, members)
	for i := range members {
		o, err := postgresql.Open(ctx, driver.Options{URL: url, Member: fmt.Sprintf("m%d", i), TTL: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		if err := o.Join(ctx, "g", nil); err != nil {
			b.Fatal(err)
		}
		others = append(others, o)
	}
	return d, func() {
		for _, o := range others {
			o.Close(ctx)
		}
		d.Close(ctx)
	}
}

func BenchmarkHeartbeat(b *testing.B) {
	d, done := benchSession(b, 0)
	defer done()
	ctx := context.Background()
	for b.Loop() {
		if err := d.Heartbeat(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMembers100(b *testing.B) {
	d, done := benchSession(b, 100)
	defer done()
	ctx := context.Background()
	for b.Loop() {
		if ms, err := d.Members(ctx, "g"); err != nil || len(ms) != 100 {
			b.Fatal(len(ms), err)
		}
	}
}

// BenchmarkMember100 is IsUp's read: one member of a 100-member group.
func BenchmarkMember100(b *testing.B) {
	d, done := benchSession(b, 100)
	defer done()
	ctx := context.Background()
	g := d.(driver.MemberGetter)
	for b.Loop() {
		if m, err := g.Member(ctx, "g", "m7"); err != nil || m.ID != "m7" {
			b.Fatal(m, err)
		}
	}
}

func BenchmarkTryLockUnlock(b *testing.B) {
	d, done := benchSession(b, 0)
	defer done()
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
