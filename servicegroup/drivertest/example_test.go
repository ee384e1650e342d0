package drivertest_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

var stores atomic.Int64

// A backend runs the suite from its own tests, with a fresh namespace for
// each test (here a memory store; a directory, a key prefix or a database
// elsewhere).
func Example() {
	_ = func(t *testing.T) { // func TestConformance(t *testing.T)
		drivertest.Run(t, drivertest.Backend{
			Name: "memory",
			URL: func(t testing.TB) string {
				return fmt.Sprintf("memory://conformance-%d", stores.Add(1))
			},
			UnreachableURL: "memory://store:port",
			Open:           memory.Open,
		})
	}
}
