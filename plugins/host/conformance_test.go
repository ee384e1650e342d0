package host_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

// TestConformance runs the backend conformance suite against the file
// backend through its plugin: every session is a plugin process.
func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Backend{
		Name: "file",
		URL: func(t testing.TB) string {
			return (&url.URL{Scheme: "file", Path: t.TempDir()}).String()
		},
		UnreachableURL: "file:///dev/null/x",
		// A Factory per session: the restart backoff is per re-opened
		// session, and the suite's sessions are independent.
		Open: func(ctx context.Context, o driver.Options) (driver.Driver, error) {
			return host.Config{Dir: pluginDir}.Factory("file")(ctx, o)
		},
		Slow: true,
	})
}
