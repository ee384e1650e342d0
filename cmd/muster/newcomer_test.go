package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 15's wrong behaviours, as a newcomer meets them.

// Item 1: an empty MEMBER is refused by every command that takes one.
func TestEmptyMemberRefused(t *testing.T) {
	b := backendFlags(t, "inprocess")
	for _, args := range [][]string{{"join", "compute", ""}, {"campaign", "compute", ""}} {
		_, stderr, code := muster(t, append(b, args...)...)
		if code != 2 || !strings.Contains(stderr, "member name is empty") {
			t.Errorf("muster %s: exit %d, %q; want exit 2 naming the empty member", strings.Join(args, " "), code, stderr)
		}
	}
}

// waitExit waits for cmd to exit and returns its status.
func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("still running %v after the signal", within)
		return -1
	}
}

// Item 3: SIGTERM to the whole process group (as systemd and timeout(1)
// stop a service), plugin included, is a clean stop: campaign resigns and
// exits 0, join leaves and exits 0.
func TestGroupSIGTERMIsCleanStop(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			b := backendFlags(t, mode)
			camp := start(t, append(b, "campaign", "g", "m")...)
			join := start(t, append(b, "join", "compute", "h1")...)
			eventually(t, 10*time.Second, "m leads and h1 is up", func() bool {
				out, _, _ := muster(t, append(b, "leader", "g")...)
				_, _, up := muster(t, append(b, "is-up", "compute", "h1")...)
				return out == "m\n" && up == 0
			})
			for name, cmd := range map[string]*exec.Cmd{"campaign": camp, "join": join} {
				if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				if code := waitExit(t, cmd, 20*time.Second); code != 0 {
					t.Errorf("%s stopped by SIGTERM to its process group: exit %d; want 0", name, code)
				}
			}
			if _, stderr, code := muster(t, append(b, "leader", "g")...); code != 1 {
				t.Errorf("leader after the stop: exit %d (%s); want 1, nobody leads", code, stderr)
			}
			if out, _, code := muster(t, append(b, "is-up", "compute", "h1")...); code != 1 {
				t.Errorf("is-up h1 after its join stopped: %q exit %d; want down", out, code)
			}
		})
	}
}

// Item 4: a join restarted right after kill -9 of its predecessor (as
// systemd's RestartSec does) is listed again, and keeps running.
func TestJoinRestartedAfterKill(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			b := backendFlags(t, mode)
			first := start(t, append(b, "join", "compute", "h1")...)
			eventually(t, 10*time.Second, "h1 up", func() bool {
				_, _, code := muster(t, append(b, "is-up", "compute", "h1")...)
				return code == 0
			})
			_ = syscall.Kill(-first.Process.Pid, syscall.SIGKILL)
			_ = waitExit(t, first, 10*time.Second)
			time.Sleep(100 * time.Millisecond)
			second := start(t, append(b, "join", "compute", "h1")...)
			eventually(t, 10*time.Second, "h1 up again through the restarted join", func() bool {
				_, _, code := muster(t, append(b, "is-up", "compute", "h1")...)
				return code == 0
			})
			if !running(second.Process.Pid) {
				t.Fatal("the restarted join exited")
			}
		})
	}
}

// running reports whether pid is a live process, not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// Item 2: ring gives no key to a forced-down member.
func TestRingSkipsForcedDown(t *testing.T) {
	b := backendFlags(t, "inprocess")
	start(t, append(b, "join", "compute", "h1")...)
	start(t, append(b, "join", "compute", "h2")...)
	eventually(t, 10*time.Second, "h1 and h2 up", func() bool {
		_, _, c1 := muster(t, append(b, "is-up", "compute", "h1")...)
		_, _, c2 := muster(t, append(b, "is-up", "compute", "h2")...)
		return c1 == 0 && c2 == 0
	})
	keys := []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"}
	if _, stderr, code := muster(t, append(b, "force-down", "compute", "h2")...); code != 0 {
		t.Fatalf("force-down: %d %s", code, stderr)
	}
	out, stderr, code := muster(t, append(append(b, "ring", "compute"), keys...)...)
	if code != 0 {
		t.Fatalf("ring: %d %s", code, stderr)
	}
	if strings.Contains(out, "h2") || strings.Count(out, "h1") != len(keys) {
		t.Fatalf("ring with h2 forced down:\n%s\nwant every key on h1", out)
	}
}

// create-schema is for the SQL backends; elsewhere it says so.
func TestCreateSchemaOnlySQL(t *testing.T) {
	_, stderr, code := muster(t, append(backendFlags(t, "inprocess"), "create-schema")...)
	if code != 2 || !strings.Contains(stderr, "keeps no schema") {
		t.Fatalf("create-schema on the file backend: exit %d, %q", code, stderr)
	}
}

// create-schema runs the backend's plugin (muster links no SQL driver): its
// failure is muster's one line, naming the URL without its password; a
// missing plugin is named by its path.
func TestCreateSchemaRunsPlugin(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "muster.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("[backend]\nplugin_dir = %q\n", binDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := muster(t, "--config", cfg,
		"--url", "postgresql://admin:hunter2@127.0.0.1:1/db", "create-schema")
	oneLineError(t, stderr)
	if code != 2 || strings.Contains(stderr, "hunter2") || !strings.Contains(stderr, "create schema") ||
		!strings.Contains(stderr, "127.0.0.1:1") {
		t.Fatalf("create-schema on a closed port: exit %d, %q", code, stderr)
	}
	_, stderr, code = muster(t, "--config", cfg,
		"--url", "mysql://admin:hunter2@127.0.0.1:1/db", "create-schema")
	oneLineError(t, stderr)
	if code != 2 || !strings.Contains(stderr, filepath.Join(binDir, "muster-plugin-mysql")) {
		t.Fatalf("create-schema without the mysql plugin: exit %d, %q", code, stderr)
	}
}

// muster links only file and memory: in-process on another backend says
// how to get it (plugin mode, or the allbackends build), in one line.
func TestInProcessNotLinked(t *testing.T) {
	_, stderr, code := muster(t, "--config=", "--url", "redis://127.0.0.1:1", "--mode", "inprocess", "groups")
	oneLineError(t, stderr)
	if code != 2 || !strings.Contains(stderr, `"redis"`) || !strings.Contains(stderr, `mode "plugin"`) ||
		!strings.Contains(stderr, "-tags allbackends") || strings.Contains(stderr, "import its package") {
		t.Fatalf("in-process redis in a muster without it: exit %d, %q", code, stderr)
	}
}

// Item 5: force-down of a member nobody uses warns (the mark outlives
// sessions), and still sets the mark.
func TestForceDownUnknownWarns(t *testing.T) {
	b := backendFlags(t, "inprocess")
	start(t, append(b, "join", "compute", "h1")...)
	eventually(t, 10*time.Second, "h1 up", func() bool {
		_, _, code := muster(t, append(b, "is-up", "compute", "h1")...)
		return code == 0
	})
	_, stderr, code := muster(t, append(b, "force-down", "compute", "h9")...)
	if code != 0 || !strings.Contains(stderr, `"h9" is not a live member`) {
		t.Fatalf("force-down of an unknown member: exit %d, %q; want 0 and a warning", code, stderr)
	}
	if _, stderr, _ := muster(t, append(b, "force-down", "compute", "h1")...); stderr != "" {
		t.Fatalf("force-down of a live member warned: %q", stderr)
	}
}

// Items 6 and 8: lock refuses a negative --timeout, and a CMD that cannot
// run exits as a shell would (127 not found, 126 not runnable), in one line.
func TestLockBadCommand(t *testing.T) {
	b := backendFlags(t, "inprocess")
	dir := t.TempDir()
	notExec := dir + "/x.sh"
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"lock", "nightly", "--", dir + "/nosuch.sh"}, 127, "lock nightly: cannot run " + dir + "/nosuch.sh: no such file"},
		{[]string{"lock", "nightly", "--", "nosuch-command"}, 127, "cannot run nosuch-command: not found in $PATH"},
		{[]string{"lock", "nightly", "--", notExec}, 126, "permission denied"},
		{[]string{"lock", "nightly", "--timeout", "-1s", "--", "true"}, 2, "--timeout -1s is negative"},
	} {
		_, stderr, code := muster(t, append(b, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("muster %s: exit %d, %q; want %d and %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
		oneLineError(t, stderr)
	}
}
