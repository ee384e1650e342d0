package etcd_test

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

// srv is the package's one etcd; cluster is the 3-node cluster of the
// fault tests, started by the first of them; pluginDir holds the plugin
// binary (built without -race).
var (
	srv       *testserver.Server
	startErr  error
	cluster   *testserver.EtcdCluster
	pluginDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	srv, startErr = testserver.StartEtcd()
	dir, err := os.MkdirTemp("", "muster-etcd-plugin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	pluginDir = dir
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, host.BinaryName("etcd")),
		"github.com/musterhq/muster/plugins/etcd/cmd/muster-plugin-etcd")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build etcd plugin:", err)
		return 2
	}
	code := m.Run()
	if srv != nil {
		srv.Close()
	}
	if cluster != nil {
		cluster.Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// server returns the package's etcd, or skips (fails under CI).
func server(t testing.TB) *testserver.Server {
	t.Helper()
	if startErr != nil {
		testserver.Missing(t, startErr)
	}
	srv.LogOnFailure(t)
	return srv
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// freshURL is a URL with a key prefix of its own.
func freshURL(t testing.TB) string {
	return "etcd://" + server(t).Addr() + "/t-" + randomID()
}
