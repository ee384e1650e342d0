//go:build !linux

package serve

import (
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

const parentPoll = 200 * time.Millisecond

func setParentDeathSignal() {}

// watchParent calls gone once the plugin's parent process changes.
func watchParent(log hclog.Logger, gone func()) bool {
	ppid := os.Getppid()
	go func() {
		t := time.NewTicker(parentPoll)
		defer t.Stop()
		for range t.C {
			if p := os.Getppid(); p != ppid {
				log.Warn("the host is gone", "host_pid", ppid, "parent_pid", p)
				gone()
				return
			}
		}
	}()
	return false
}
