package host_test

import (
	"context"
	"errors"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/file"
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

// A killed plugin's host still holds its locks by its own account until
// its deadline: the file backend must not free them at once because the
// plugin process is gone (it watches the host's pid, not the plugin's).
func TestKilledPluginKeepsItsLock(t *testing.T) {
	ctx := context.Background()
	u := (&url.URL{Scheme: "file", Path: t.TempDir()}).String()
	a, err := host.Config{Dir: pluginDir}.Factory("file")(ctx, driver.Options{URL: u, Member: "a", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	if _, err := a.TryLock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	pid, _ := host.PID(a)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the host never saw its plugin die")
	}
	b, err := file.Open(ctx, driver.Options{URL: u, Member: "b", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if _, err := b.TryLock(ctx, "l"); !errors.Is(err, driver.ErrLockHeld) {
		t.Fatalf("lock of a killed plugin's session, its host alive: %v; want ErrLockHeld until its TTL", err)
	}
}
