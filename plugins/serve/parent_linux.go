package serve

import (
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/musterhq/muster/plugins/proto"
)

// parentPoll is how often the plugin checks that its host is still its
// parent; the death signal is immediate, this is the fallback.
const parentPoll = 200 * time.Millisecond

func setParentDeathSignal() {
	// The signal is sent when the thread that forked us exits; Go hosts do
	// not end threads in practice, and watchParent catches the rest.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0)
}

// watchParent calls gone once the plugin's parent process changes (the
// host died and the plugin was re-parented). It reports true at once, and
// starts nothing, when the parent is already not the host the plugin was
// started by.
func watchParent(log hclog.Logger, gone func()) bool {
	ppid := os.Getppid()
	if want, err := strconv.Atoi(os.Getenv(proto.EnvHostPID)); err == nil && want > 0 && want != ppid {
		log.Warn("the host is gone", "host_pid", want, "parent_pid", ppid)
		return true
	}
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
