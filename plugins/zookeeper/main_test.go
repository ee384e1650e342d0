package zookeeper_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/musterhq/muster/internal/testserver"
)

// zkServer is the package's one ZooKeeper; pluginDir holds the plugin
// binary (built without -race).
var (
	zkServer  *testserver.Server
	startErr  error
	pluginDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	zkServer, startErr = testserver.StartZooKeeper()
	defer func() {
		if zkServer != nil {
			zkServer.Close()
		}
	}()
	dir, err := testserver.BuildPlugin("zookeeper")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	pluginDir = dir
	code := m.Run()
	if zkServer != nil {
		zkServer.Close()
		zkServer = nil
	}
	closeCluster()
	return testserver.CheckLeaks(code)
}

// server returns the package's ZooKeeper, or skips (fails under CI).
func server(t testing.TB) *testserver.Server {
	t.Helper()
	if startErr != nil {
		testserver.Missing(t, startErr)
	}
	zkServer.LogOnFailure(t)
	return zkServer
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// freshURL is a URL with a chroot of its own.
func freshURL(t testing.TB) string {
	return "zookeeper://" + server(t).Addr() + "/t-" + randomID()
}

// closeCluster stops the cluster if a test started it.
func closeCluster() {
	if cluster != nil {
		cluster.Close()
	}
}
