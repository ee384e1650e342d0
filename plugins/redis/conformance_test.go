package redis_test

import (
	"context"
	"testing"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/plugins/redis"
	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

// unreachable is a loopback port nobody listens on.
const unreachable = "redis://127.0.0.1:1?namespace=x"

func TestConformance(t *testing.T) {
	server(t)
	drivertest.Run(t, drivertest.Backend{
		Name:           "redis",
		URL:            nsURL,
		UnreachableURL: unreachable,
		Open:           redis.Open,
		Slow:           true,
	})
}

// TestConformancePlugin runs the suite through muster-plugin-redis: every
// session is a plugin process.
func TestConformancePlugin(t *testing.T) {
	server(t)
	drivertest.Run(t, drivertest.Backend{
		Name:           "redis",
		URL:            nsURL,
		UnreachableURL: unreachable,
		Open: func(ctx context.Context, o driver.Options) (driver.Driver, error) {
			return host.Config{Dir: pluginDir}.Factory("redis")(ctx, o)
		},
		Slow: true,
	})
}
