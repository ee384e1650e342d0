package memcached_test

import (
	"context"
	"testing"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/plugins/memcached"
	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

// unreachable is a port nothing listens on (port 1 is refused at once).
const unreachable = "memcached://127.0.0.1:1"

func TestConformance(t *testing.T) {
	need(t)
	drivertest.Run(t, drivertest.Backend{
		Name:           "memcached",
		URL:            nsURL,
		UnreachableURL: unreachable,
		Open:           memcached.Open,
		Slow:           true,
	})
}

// TestPluginConformance runs the suite through the plugin: every session
// is a muster-plugin-memcached process.
func TestPluginConformance(t *testing.T) {
	need(t)
	if buildErr != nil {
		t.Fatalf("building the plugin: %v", buildErr)
	}
	drivertest.Run(t, drivertest.Backend{
		Name:           "memcached",
		URL:            nsURL,
		UnreachableURL: unreachable,
		// A Factory per session, as plugins/host's own conformance test.
		Open: func(ctx context.Context, o driver.Options) (driver.Driver, error) {
			return host.Config{Dir: pluginDir}.Factory("memcached")(ctx, o)
		},
		Slow: true,
	})
}
