package host_test

import (
	"context"
	"net/url"
	"syscall"
	"testing"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

// TestSafety is the randomized safety run (issue 13) through the file
// plugin: every member is a plugin process, and some of them are killed.
func TestSafety(t *testing.T) {
	drivertest.Safety(t, drivertest.Backend{
		Name: "file",
		URL: func(t testing.TB) string {
			return (&url.URL{Scheme: "file", Path: t.TempDir()}).String()
		},
		Open: func(ctx context.Context, o driver.Options) (driver.Driver, error) {
			return host.Config{Dir: pluginDir}.Factory("file")(ctx, o)
		},
	}, drivertest.SafetyConfig{
		Kill: func(d driver.Driver) error {
			if pid, ok := host.PID(d); ok {
				return syscall.Kill(pid, syscall.SIGKILL)
			}
			return nil
		},
	})
}
