package etcd_test

import (
	"context"
	"testing"

	"github.com/musterhq/muster/plugins/etcd"
	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

// unreachable: nothing listens on port 1.
const unreachable = "etcd://127.0.0.1:1/x"

func TestConformance(t *testing.T) {
	server(t)
	drivertest.Run(t, drivertest.Backend{
		Name:           "etcd",
		URL:            freshURL,
		UnreachableURL: unreachable,
		Open:           etcd.Open,
		Slow:           true,
	})
}

// TestConformancePlugin runs the suite through muster-plugin-etcd: every
// session is a plugin process.
func TestConformancePlugin(t *testing.T) {
	server(t)
	drivertest.Run(t, drivertest.Backend{
		Name:           "etcd",
		URL:            freshURL,
		UnreachableURL: unreachable,
		Open: func(ctx context.Context, o driver.Options) (driver.Driver, error) {
			return host.Config{Dir: pluginDir}.Factory("etcd")(ctx, o)
		},
		Slow: true,
	})
}
