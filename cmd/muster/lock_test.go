package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `muster lock` runs CMD in its own process group and, whenever CMD must
// stop (lock lost, SIGTERM/SIGINT to muster, CMD exited leaving children),
// ends the whole group before it exits and releases the lock.

// groupScript starts a background sleep, records its pid and waits for it:
// the sleep is CMD's child, the one a plain kill of CMD leaves running.
const groupScript = `sleep 30 & echo $! > "$0"; wait`

// lockRun is a background `muster lock` whose output goes to a file, so
// that waiting for muster never waits for a grandchild holding a pipe.
type lockRun struct {
	cmd     *exec.Cmd
	out     string
	exited  chan struct{}
	state   *os.ProcessState
	childOf string // file the grandchild's pid is written to
}

// startLock starts muster with args; childOf is where CMD writes its
// child's pid.
func startLock(t *testing.T, childOf string, args ...string) *lockRun {
	t.Helper()
	r := &lockRun{out: filepath.Join(t.TempDir(), "out"), exited: make(chan struct{}), childOf: childOf}
	f, err := os.Create(r.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(filepath.Join(binDir, "muster"), args...)
	cmd.Env = append(os.Environ(), "MUSTER_CONFIG=")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd = cmd
	go func() {
		r.state, _ = cmd.Process.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if pid := r.childPid(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		<-r.exited
		b, _ := os.ReadFile(r.out)
		if t.Failed() || strings.Contains(string(b), "DATA RACE") {
			t.Errorf("output of muster %v:\n%s", args, b)
		}
	})
	return r
}

// childPid is the grandchild's pid, 0 until CMD has written it.
func (r *lockRun) childPid() int {
	b, err := os.ReadFile(r.childOf)
	if err != nil || !strings.HasSuffix(string(b), "\n") {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// waitChild waits until CMD has started its child.
func (r *lockRun) waitChild(t *testing.T) int {
	t.Helper()
	var pid int
	eventually(t, 15*time.Second, "CMD started its child", func() bool {
		// Read before checking for exit: a CMD that exits at once may have
		// written the pid and gone, muster with it, between two polls.
		if pid = r.childPid(); pid > 0 {
			return true
		}
		select {
		case <-r.exited:
			if pid = r.childPid(); pid > 0 {
				return true
			}
			t.Fatalf("muster lock exited %d before CMD started its child", r.state.ExitCode())
		default:
		}
		return false
	})
	return pid
}

// wait waits for muster to exit and returns its status.
func (r *lockRun) wait(t *testing.T, within time.Duration, why string) int {
	t.Helper()
	select {
	case <-r.exited:
		return r.state.ExitCode()
	case <-time.After(within):
		t.Fatalf("muster lock still running %v after %s", within, why)
		return -1
	}
}

// The lock is lost (its plugin killed): CMD's child is gone by the time
// muster exits 2.
func TestLockLostEndsCommandGroup(t *testing.T) {
	b := []string{"--url", "file://" + t.TempDir(), "--mode", "plugin", "--heartbeat-interval", "200ms", "--member-ttl", "2s"}
	pidFile := filepath.Join(t.TempDir(), "childpid")
	r := startLock(t, pidFile, append(b, "lock", "L", "--", "sh", "-c", groupScript, pidFile)...)
	child := r.waitChild(t)
	var plugins []int
	eventually(t, 5*time.Second, "the plugin of muster lock", func() bool {
		plugins = pluginOf(t, r.cmd.Process.Pid)
		return len(plugins) == 1
	})
	if err := syscall.Kill(plugins[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 20*time.Second, "its plugin was killed"); code != 2 {
		t.Fatalf("muster lock exited %d after its lock was lost; want 2", code)
	}
	if alive(child) {
		t.Fatalf("CMD's child %d still runs after muster lock exited on losing the lock", child)
	}
}

// SIGTERM to muster ends CMD and its child; muster exits with CMD's status.
func TestLockSIGTERMEndsCommandGroup(t *testing.T) {
	b := backendFlags(t, "inprocess")
	pidFile := filepath.Join(t.TempDir(), "childpid")
	r := startLock(t, pidFile, append(b, "lock", "L", "--", "sh", "-c", groupScript, pidFile)...)
	child := r.waitChild(t)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := r.wait(t, 20*time.Second, "SIGTERM")
	if alive(child) {
		t.Fatalf("CMD's child %d still runs after muster lock exited on SIGTERM", child)
	}
	if code != 128+int(syscall.SIGTERM) {
		t.Fatalf("muster lock exited %d on SIGTERM; want CMD's status %d", code, 128+int(syscall.SIGTERM))
	}
}

// A group that ignores SIGTERM gets SIGKILL after --kill-after.
func TestLockKillAfterEscalates(t *testing.T) {
	b := backendFlags(t, "inprocess")
	pidFile := filepath.Join(t.TempDir(), "childpid")
	r := startLock(t, pidFile, append(b, "lock", "L", "--kill-after", "500ms", "--", "sh", "-c", `trap "" TERM INT; `+groupScript, pidFile)...)
	child := r.waitChild(t)
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := r.wait(t, 20*time.Second, "SIGINT and a 500ms --kill-after")
	if alive(child) {
		t.Fatalf("CMD's child %d still runs after muster lock exited", child)
	}
	if code != 128+int(syscall.SIGKILL) {
		t.Fatalf("muster lock exited %d; want %d (CMD killed)", code, 128+int(syscall.SIGKILL))
	}
}

// CMD exits and leaves a child running: the child is ended before the lock
// is released, and muster exits with CMD's status.
func TestLockCommandExitEndsLeftovers(t *testing.T) {
	b := backendFlags(t, "inprocess")
	pidFile := filepath.Join(t.TempDir(), "childpid")
	r := startLock(t, pidFile, append(b, "lock", "L", "--", "sh", "-c", `sleep 30 & echo $! > "$0"; exit 3`, pidFile)...)
	child := r.waitChild(t)
	code := r.wait(t, 20*time.Second, "CMD exited")
	if alive(child) {
		t.Fatalf("CMD's child %d still runs after muster lock exited", child)
	}
	if code != 3 {
		t.Fatalf("muster lock exited %d; want CMD's status 3", code)
	}
}
