package memory_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

// TestSafety is the randomized safety run (issue 13) on the memory backend,
// in-process, under -race; `make soak-safety` runs it longer.
func TestSafety(t *testing.T) {
	drivertest.Safety(t, drivertest.Backend{
		Name: "memory",
		URL:  func(testing.TB) string { return fmt.Sprintf("memory://safety-%d", time.Now().UnixNano()) },
		Open: memory.Open,
	}, drivertest.SafetyConfig{})
}
