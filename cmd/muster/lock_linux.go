package main

import "syscall"

// groupAttr puts CMD in a process group of its own and has the kernel
// SIGKILL it should muster die first (kill -9, OOM): CMD must not outlive
// the lock's holder unnoticed.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// becomeSubreaper makes muster the reaper of its orphaned descendants
// (prctl PR_SET_CHILD_SUBREAPER), so that the end of CMD's process group
// does not depend on an init that reaps. Best effort.
func becomeSubreaper() {
	const prSetChildSubreaper = 36
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
}
