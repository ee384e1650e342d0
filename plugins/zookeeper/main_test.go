package zookeeper_test

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
	dir, err := os.MkdirTemp("", "muster-zk-plugin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	pluginDir = dir
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, host.BinaryName("zookeeper")),
		"github.com/musterhq/muster/plugins/zookeeper/cmd/muster-plugin-zookeeper")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build zookeeper plugin:", err)
		return 2
	}
	code := m.Run()
	if zkServer != nil {
		zkServer.Close()
	}
	closeCluster()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
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
