package redis_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/musterhq/muster/internal/testserver"
)

// srv is the package's one redis-server; pluginDir holds the plugin binary.
var (
	srv       *testserver.Server
	startErr  error
	pluginDir string
)

func TestMain(m *testing.M) {
	srv, startErr = testserver.StartRedis()
	dir, err := testserver.BuildPlugin("redis")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if srv != nil {
			srv.Close()
		}
		os.Exit(2)
	}
	pluginDir = dir
	code := m.Run()
	if srv != nil {
		srv.Close() // before the leak check: its process has goroutines
	}
	os.RemoveAll(dir)
	os.Exit(testserver.CheckLeaks(code))
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

// namespace is the namespace of a URL nsURL made.
func namespace(url string) string {
	_, ns, _ := strings.Cut(url, "?namespace=")
	return ns
}
