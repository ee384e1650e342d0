package redis_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/host"
)

// srv is the package's one redis-server; pluginDir holds the plugin binary.
var (
	srv       *testserver.Server
	startErr  error
	pluginDir string
)

func TestMain(m *testing.M) {
	srv, startErr = testserver.StartRedis()
	dir, err := os.MkdirTemp("", "muster-redis-plugin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pluginDir = dir
	// Without -race: one plugin process per session; the driver itself
	// runs under -race in-process.
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, host.BinaryName("redis")),
		"github.com/musterhq/muster/plugins/redis/cmd/muster-plugin-redis")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	code := 2
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build redis plugin:", err)
	} else {
		code = m.Run()
		if srv != nil {
			srv.Close() // before the leak check: its process has goroutines
			srv = nil
		}
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
			}
		}
	}
	if srv != nil {
		srv.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// server returns the package's redis-server, or fails (skips outside CI)
// when it could not start.
func server(t testing.TB) *testserver.Server {
	t.Helper()
	if startErr != nil {
		testserver.Missing(t, startErr)
	}
	srv.LogOnFailure(t)
	return srv
}

// nsURL is a URL of a fresh namespace on the package's server.
func nsURL(t testing.TB) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "redis://" + server(t).Addr() + "?namespace=t" + hex.EncodeToString(b)
}
