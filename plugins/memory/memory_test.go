package memory_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var stores atomic.Int64

func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Backend{
		Name: "memory",
		URL: func(t testing.TB) string {
			return fmt.Sprintf("memory://conformance-%d", stores.Add(1))
		},
		// There is no server to miss: a malformed address is the only one
		// that cannot work.
		UnreachableURL: "memory://store:port",
		Open:           memory.Open,
		Slow:           true,
	})
}
