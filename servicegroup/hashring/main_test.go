package hashring

import (
	"testing"

	"go.uber.org/goleak"
)

// New builds tables on several goroutines; none may outlive it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
