package file

import "time"

// SetSyncLocks turns the fsync of lock records on or off, for the
// benchmark that measures it; it returns the previous setting.
func SetSyncLocks(on bool) (was bool) {
	was, syncLocks = syncLocks, on
	return was
}

// ParseURL is the URL check Open runs before it touches anything.
func ParseURL(raw string) (string, error) { return parseURL(raw) }

// StepClocks shifts the boot clock (liveness) and the wall clock
// (UpdatedAt) this package reads, as a long wait or a clock step would;
// the returned func undoes it.
func StepClocks(boot, wall time.Duration) (undo func()) {
	bootStep.Add(int64(boot))
	wallStep.Add(int64(wall))
	return func() { bootStep.Add(-int64(boot)); wallStep.Add(-int64(wall)) }
}

// LockSlot is the size of one slot of a lock file (see lockfile.go).
const LockSlot = lockSlot

// SetBootID makes sessions opened from now on believe the host booted
// again with id, as after a power cut; the returned func undoes it.
func SetBootID(id string) (undo func()) {
	h, err := localHost()
	if err != nil {
		panic(err)
	}
	thisHost.boot = id
	return func() { thisHost.boot = h.boot }
}
