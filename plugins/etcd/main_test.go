package etcd_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/musterhq/muster/internal/testserver"
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
	defer func() {
		if srv != nil {
			srv.Close()
		}
	}()
	dir, err := testserver.BuildPlugin("etcd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	pluginDir = dir
	code := m.Run()
	if srv != nil {
		srv.Close()
		srv = nil
	}
	if cluster != nil {
		cluster.Close()
	}
	return testserver.CheckLeaks(code)
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
