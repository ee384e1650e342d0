package postgresql_test

import (
	"context"
	"testing"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/plugins/postgresql"
	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

// unreachable is a loopback port nobody listens on.
const unreachable = "postgresql://muster@127.0.0.1:1/muster?sslmode=disable"

func TestConformance(t *testing.T) {
	server(t)
	drivertest.Run(t, drivertest.Backend{
		Name:           "postgresql",
		URL:            nsURL,
		UnreachableURL: unreachable,
		Open:           postgresql.Open,
		Slow:           true,
	})
}

// TestConformancePlugin runs the suite through muster-plugin-postgresql:
// every session is a plugin process.
func TestConformancePlugin(t *testing.T) {
	server(t)
	drivertest.Run(t, drivertest.Backend{
		Name:           "postgresql",
		URL:            nsURL,
		UnreachableURL: unreachable,
		Open: func(ctx context.Context, o driver.Options) (driver.Driver, error) {
			return host.Config{Dir: pluginDir}.Factory("postgresql")(ctx, o)
		},
		Slow: true,
	})
}
