package mysql_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func BenchmarkHeartbeat(b *testing.B) {
	d := open(b, dbURL(b), "m", time.Minute)
	ctx := context.Background()
	for b.Loop() {
		if err := d.Heartbeat(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMembers lists a group of 100 live members.
func BenchmarkMembers(b *testing.B) {
	url := dbURL(b)
	ctx := context.Background()
	first := open(b, url, "m-000", time.Minute)
	if err := first.CreateGroup(ctx, "g"); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := open(b, url, fmt.Sprintf("m-%03d", i+1), time.Minute).Join(ctx, "g", []byte{0x80}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		ms, err := first.Members(ctx, "g")
		if err != nil || len(ms) != 100 {
			b.Fatal(len(ms), err)
		}
	}
}

func BenchmarkTryLockUnlock(b *testing.B) {
	d := open(b, dbURL(b), "m", time.Minute)
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
