package file_test

import (
	"fmt"
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
		d = open(b, dir, fmt.Sprintf("compute-%04d", i), long)
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
