package demo

import "syscall"

// childAttr puts a child in a process group of its own (so it and anything
// it starts, such as its backend plugin, can be killed together) and has
// the kernel kill it if the demo dies without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
