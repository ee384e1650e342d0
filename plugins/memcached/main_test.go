package memcached_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/memcached"
	"github.com/musterhq/muster/servicegroup/driver"
)

// One memcached for the package; every test has a key prefix of its own.
var (
	server    *testserver.Server
	serverErr error
	// pluginDir holds muster-plugin-memcached, built once without -race.
	pluginDir string
	buildErr  error
)

func TestMain(m *testing.M) {
	server, serverErr = testserver.StartMemcached()
	if serverErr == nil {
		pluginDir, buildErr = testserver.BuildPlugin("memcached")
	}
	code := m.Run()
	if server != nil {
		server.Close() // before the leak check: its process has goroutines
	}
	if pluginDir != "" {
		os.RemoveAll(pluginDir)
	}
	os.Exit(testserver.CheckLeaks(code))
}

// need returns the shared server, or skips (fails under CI=true).
func need(t testing.TB) *testserver.Server {
	t.Helper()
	if serverErr != nil {
		testserver.Missing(t, serverErr)
	}
	server.LogOnFailure(t)
	return server
}

// prefix is a fresh key namespace.
func prefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b) + "."
}

// nsURL is a URL on the shared server in a fresh namespace.
func nsURL(t testing.TB) string {
	return "memcached://" + need(t).Addr() + "?prefix=" + prefix()
}

// open opens a raw session and closes it when t ends.
func open(t testing.TB, url, member string, ttl time.Duration, instance ...string) driver.Driver {
	t.Helper()
	opts := driver.Options{URL: url, Member: member, TTL: ttl, DialTimeout: 5 * time.Second}
	if len(instance) > 0 {
		opts.Instance = instance[0]
	}
	d, err := memcached.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open %s as %q: %v", url, member, err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

func must(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eventually polls cond until it returns nil or within passes.
func eventually(t testing.TB, within time.Duration, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("not within %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var bg = context.Background()
