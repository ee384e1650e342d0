package file_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/servicegroup/driver"
)

// BenchmarkMembers lists a group of 1,000 live members, each in a session
// of its own, as an is-up check does; "cli" adds what a one-shot command
// pays around it: Open (which sweeps every session file) and Close.
func BenchmarkMembers(b *testing.B) {
	dir := b.TempDir()
	const n = 1000
	caps, err := driver.EncodeCapabilities(map[string]any{"zone": "z1", "cpus": 8, "host": "compute-0001"})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var d driver.Driver
	for i := range n {
		d = open(b, dir, fmt.Sprintf("compute-%04d", i), time.Hour) // outlives a fixed -benchtime
		join(b, d, "compute", caps)
	}
	b.Logf("%d sessions opened and joined in %v", n, time.Since(start))
	list := func(d driver.Driver) {
		ms, err := d.Members(bg, "compute")
		if err != nil || len(ms) != n {
			b.Fatalf("Members: %d, %v", len(ms), err)
		}
	}
	b.Run("1000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			list(d)
		}
	})
	b.Run("cli-1000", func(b *testing.B) {
		for b.Loop() {
			c, err := file.Open(bg, driver.Options{URL: dirURL(dir), Member: "cli", TTL: long})
			if err != nil {
				b.Fatal(err)
			}
			list(c)
			if err := c.Close(bg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHeartbeat renews one session.
func BenchmarkHeartbeat(b *testing.B) {
	d := open(b, b.TempDir(), "m", long)
	for b.Loop() {
		if err := d.Heartbeat(bg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockUnlock takes and releases one lock.
func BenchmarkLockUnlock(b *testing.B) {
	d := open(b, b.TempDir(), "m", long)
	for b.Loop() {
		tok, err := d.TryLock(bg, "L")
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Unlock(bg, "L", tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockAcquireRelease takes and releases one lock, with the fsync
// that makes tokens durable (of the token ceiling, when a token reaches
// it: once per 1,024 acquires) and without it (what that costs).
func BenchmarkLockAcquireRelease(b *testing.B) {
	for _, durable := range []bool{true, false} {
		name := map[bool]string{true: "fsync", false: "no-fsync"}[durable]
		b.Run(name, func(b *testing.B) {
			was := file.SetSyncLocks(durable)
			defer file.SetSyncLocks(was)
			d := open(b, b.TempDir(), "m", long)
			b.ReportAllocs()
			for b.Loop() {
				tok, err := d.TryLock(bg, "L")
				if err != nil {
					b.Fatal(err)
				}
				if err := d.Unlock(bg, "L", tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIsUp checks one member of a group of 10 and of 2,000: by
// listing the group (what the core's IsUp does today) and by the
// single-member lookup (Member).
func BenchmarkIsUp(b *testing.B) {
	type memberGetter interface {
		Member(ctx context.Context, group, member string) (driver.Member, error)
	}
	for _, n := range []int{10, 2000} {
		dir := b.TempDir()
		var d driver.Driver
		for i := range n {
			// Nobody heartbeats them: an hour outlives a run at a fixed
			// -benchtime (2,000 listings of 2,000 take about a minute).
			d = open(b, dir, fmt.Sprintf("compute-%04d", i), time.Hour)
			join(b, d, "compute", nil)
		}
		want := fmt.Sprintf("compute-%04d", n/2)
		b.Run(fmt.Sprintf("members-%d", n), func(b *testing.B) {
			for b.Loop() {
				ms, err := d.Members(bg, "compute")
				if err != nil || !slices.ContainsFunc(ms, func(m driver.Member) bool { return m.ID == want }) {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("member-%d", n), func(b *testing.B) {
			mg := d.(memberGetter)
			b.ReportAllocs()
			for b.Loop() {
				if m, err := mg.Member(bg, "compute", want); err != nil || m.ID != want {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCloseHistoricalLocks closes a session holding one lock in a
// directory with 100,000 lock names used before (free records, kept for
// their tokens).
func BenchmarkCloseHistoricalLocks(b *testing.B) {
	dir := b.TempDir()
	open(b, dir, "setup", long)
	rec := []byte("muster lock 1\ntoken 7\n\n")
	for i := range 100_000 {
		if err := os.WriteFile(filepath.Join(dir, "locks", fmt.Sprintf("old-%06d", i)), rec, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		b.StopTimer()
		d, err := file.Open(bg, driver.Options{URL: dirURL(dir), Member: "m", TTL: long})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.TryLock(bg, "L"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := d.Close(bg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTakeOverHistoricalLocks takes over the lock of a dead holder
// (its session file removed, as after a crash and a sweep) in a directory
// with 100,000 lock names used before: the takeover reaps the dead session.
func BenchmarkTakeOverHistoricalLocks(b *testing.B) {
	dir := b.TempDir()
	taker := open(b, dir, "taker", long)
	rec := []byte("muster lock 1\ntoken 7\n\n")
	for i := range 100_000 {
		if err := os.WriteFile(filepath.Join(dir, "locks", fmt.Sprintf("old-%06d", i)), rec, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		b.StopTimer()
		d, err := file.Open(bg, driver.Options{URL: dirURL(dir), Member: "dead", TTL: long})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.TryLock(bg, "L"); err != nil {
			b.Fatal(err)
		}
		// It dies: its session file goes, its records stay.
		if err := os.Remove(filepath.Join(dir, "sessions", d.(driver.SessionID).SessionID())); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		tok, err := taker.TryLock(bg, "L")
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := taker.Unlock(bg, "L", tok); err != nil {
			b.Fatal(err)
		}
		_ = d.Close(bg)
		b.StartTimer()
	}
}
