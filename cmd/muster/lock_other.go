//go:build !linux

package main

import "syscall"

// groupAttr puts CMD in a process group of its own.
func groupAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// becomeSubreaper does nothing where there is no PR_SET_CHILD_SUBREAPER:
// orphans of CMD's group are reaped by init.
func becomeSubreaper() {}
