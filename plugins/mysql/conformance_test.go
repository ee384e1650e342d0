package mysql_test

import (
	"context"
	"testing"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/plugins/mysql"
	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

// unreachable is a loopback port nobody listens on.
const unreachable = "mysql://u:secret@127.0.0.1:1/x"

func TestConformance(t *testing.T) {
	server(t)
	drivertest.Run(t, drivertest.Backend{
		Name:           "mysql",
		URL:            dbURL,
		UnreachableURL: unreachable,
		Open:           mysql.Open,
		Slow:           true,
	})
}

// TestConformancePlugin runs the suite through muster-plugin-mysql: every
// session is a plugin process.
func TestConformancePlugin(t *testing.T) {
	server(t)
	drivertest.Run(t, drivertest.Backend{
		Name:           "mysql",
		URL:            dbURL,
		UnreachableURL: unreachable,
		Open: func(ctx context.Context, o driver.Options) (driver.Driver, error) {
			return host.Config{Dir: pluginDir}.Factory("mysql")(ctx, o)
		},
		Slow: true,
	})
}
