package zookeeper_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/plugins/zookeeper"
	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

// unreachable: nothing listens on port 1.
const unreachable = "zookeeper://127.0.0.1:1/x"

func TestConformance(t *testing.T) {
	server(t)
	drivertest.Run(t, drivertest.Backend{
		Name:           "zookeeper",
		URL:            freshURL,
		UnreachableURL: unreachable,
		Open:           zookeeper.Open,
		Slow:           true,
	})
}

// TestConformancePlugin runs the suite through the plugin: every session is
// a plugin process.
func TestConformancePlugin(t *testing.T) {
	server(t)
	drivertest.Run(t, drivertest.Backend{
		Name:           "zookeeper",
		URL:            freshURL,
		UnreachableURL: unreachable,
		Open: func(ctx context.Context, o driver.Options) (driver.Driver, error) {
			return host.Config{Dir: pluginDir}.Factory("zookeeper")(ctx, o)
		},
		Slow: true,
	})
}

// TestOpenErrors: bad URLs, credentials and TTLs outside the ensemble's
// range fail Open with one clear error, secrets redacted.
func TestOpenErrors(t *testing.T) {
	addr := server(t).Addr()
	ctx := context.Background()
	open := func(url string, ttl time.Duration) (driver.Driver, error) {
		return zookeeper.Open(ctx, driver.Options{URL: url, Member: "m", TTL: ttl, DialTimeout: 5 * time.Second})
	}
	// An authenticated chroot: the right password works, others do not.
	chroot := "/auth-" + randomID()
	good, err := open("zookeeper://alice:s3cret@"+addr+chroot, time.Minute)
	if err != nil {
		t.Fatalf("open with credentials: %v", err)
	}
	defer good.Close(ctx)
	for _, url := range []string{"zookeeper://alice:wrong-pw@" + addr + chroot, "zookeeper://" + addr + chroot} {
		d, err := open(url, time.Minute)
		if err == nil {
			d.Close(ctx)
			t.Errorf("open %s succeeded; want an auth error", driver.Redact(url))
			continue
		}
		t.Logf("%v", err)
		if strings.Contains(err.Error(), "wrong-pw") || !strings.Contains(err.Error(), "zookeeper") || !strings.Contains(err.Error(), addr) {
			t.Errorf("error %q: want one naming zookeeper and %s without the password", err, addr)
		}
	}
	for _, url := range []string{"zookeeper://" + addr + "/x?bogus=1", "zookeeper:///x", "zookeeper://" + addr + "?timeout=never"} {
		if d, err := open(url, time.Minute); err == nil {
			d.Close(ctx)
			t.Errorf("open %s succeeded", url)
		} else if !errors.Is(err, driver.ErrUnavailable) || !strings.Contains(err.Error(), "zookeeper") {
			t.Errorf("open %s: %v", url, err)
		}
	}
	// Longer than the test server's maxSessionTimeout.
	if d, err := open(freshURL(t), 10*time.Minute); err == nil {
		d.Close(ctx)
		t.Errorf("a TTL above maxSessionTimeout was accepted")
	} else if !strings.Contains(err.Error(), "session timeout") {
		t.Errorf("TTL above the server's range: %v", err)
	}
}
