package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// onTerminal runs muster with its stdout on a new pseudo-terminal, as an
// operator's shell does, and returns what it printed there.
func onTerminal(t *testing.T, args ...string) string {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal("unlockpt:", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal("ptsname:", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&out, master) // ends with EIO once the terminal is closed
	}()
	cmd := exec.Command(filepath.Join(binDir, "muster"), args...)
	cmd.Env = append(os.Environ(), "MUSTER_CONFIG=")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = tty, &stderr
	err = cmd.Run()
	tty.Close()
	if err != nil {
		t.Fatalf("muster %q on a terminal: %v: %s", args, err, stderr.String())
	}
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output not read within 10s")
	}
	return out.String()
}
