package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Fault tests with real processes: a `muster` command, its plugin, and
// other `muster` commands observing them through the file backend.

// pluginOf returns the pids of the plugin processes whose parent is pid.
func pluginOf(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "muster-plugin") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			out = append(out, child)
		}
	}
	return out
}

func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

func membersOf(t *testing.T, b []string, group string) map[string]memberJSON {
	out, _, code := muster(t, append(b, "members", group, "--json")...)
	if code != 0 {
		return nil
	}
	var ms []memberJSON
	if json.Unmarshal([]byte(out), &ms) != nil {
		return nil
	}
	byID := map[string]memberJSON{}
	for _, m := range ms {
		byID[m.ID] = m
	}
	return byID
}

// kill -9 of the plugin under a joined member: the host notices, starts a
// new plugin, and the member is listed again, with its capabilities, within
// two heartbeat intervals of the new plugin being up.
func TestPluginKilledMemberRelisted(t *testing.T) {
	b := []string{"--url", "file://" + t.TempDir(), "--mode", "plugin", "--heartbeat-interval", "500ms", "--member-ttl", "5s"}
	j := start(t, append(b, "join", "compute", "h1", "--caps", `{"vcpus": 8}`)...)
	eventually(t, 15*time.Second, "h1 listed", func() bool { _, ok := membersOf(t, b, "compute")["h1"]; return ok })
	var plugins []int
	eventually(t, 5*time.Second, "the plugin of muster join", func() bool { plugins = pluginOf(t, j.Process.Pid); return len(plugins) == 1 })
	old := plugins[0]
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// The new plugin's session ended the ghost one at once (same
	// instance), so the member may vanish briefly; it must come back with
	// its capabilities, well before the 5s TTL could have hidden a ghost.
	eventually(t, 2*time.Second, "a new plugin", func() bool {
		p := pluginOf(t, j.Process.Pid)
		return len(p) == 1 && p[0] != old
	})
	eventually(t, time.Second, "h1 listed again by the new plugin's session", func() bool {
		m, ok := membersOf(t, b, "compute")["h1"]
		return ok && m.Capabilities["vcpus"] == float64(8) && m.Up
	})
	t.Logf("member re-listed by a new plugin %v after kill -9 of the old one", time.Since(killed).Round(time.Millisecond))
}

// A lock held through a plugin that is killed is reported lost (the command
// under it is stopped) and the next holder gets a larger token.
func TestPluginKilledLockLost(t *testing.T) {
	b := []string{"--url", "file://" + t.TempDir(), "--mode", "plugin", "--heartbeat-interval", "200ms", "--member-ttl", "2s"}
	tokens := filepath.Join(t.TempDir(), "tokens")
	holder := start(t, append(b, "lock", "L", "--", "sh", "-c", `echo $MUSTER_FENCING_TOKEN >> "$0"; exec sleep 60`, tokens)...)
	eventually(t, 15*time.Second, "the first holder runs", func() bool {
		b, _ := os.ReadFile(tokens)
		return strings.TrimSpace(string(b)) != ""
	})
	var plugins []int
	eventually(t, 5*time.Second, "the plugin of muster lock", func() bool {
		plugins = pluginOf(t, holder.Process.Pid)
		return len(plugins) == 1
	})
	done := make(chan error, 1)
	go func() { done <- holder.Wait() }()
	if err := syscall.Kill(plugins[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if code := exitCode(err); code != 2 {
			t.Fatalf("muster lock exited %d after its lock was lost; want 2", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("muster lock still running 10s after its plugin was killed")
	}
	out, stderr, code := muster(t, append(b, "lock", "L", "--timeout", "10s", "--", "sh", "-c", "echo $MUSTER_FENCING_TOKEN")...)
	if code != 0 {
		t.Fatalf("next holder: exit %d: %s", code, stderr)
	}
	first, _ := os.ReadFile(tokens)
	a, _ := strconv.Atoi(strings.TrimSpace(string(first)))
	n, _ := strconv.Atoi(strings.TrimSpace(out))
	if n <= a {
		t.Fatalf("next holder's token %d is not larger than the lost holder's %d", n, a)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		return ee.ExitCode()
	}
	return -1
}

// kill -9 of `muster join`: its plugin is gone within 2 s.
func TestHostKilledNoOrphan(t *testing.T) {
	b := backendFlags(t, "plugin")
	j := start(t, append(b, "join", "compute", "h1")...)
	var plugins []int
	eventually(t, 15*time.Second, "the plugin of muster join", func() bool { plugins = pluginOf(t, j.Process.Pid); return len(plugins) == 1 })
	if err := syscall.Kill(j.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	eventually(t, 2*time.Second, "plugin gone after its host was killed", func() bool { return !alive(plugins[0]) })
	t.Logf("plugin gone %v after kill -9 of its host", time.Since(killed).Round(time.Millisecond))
}

// SIGSTOP of `muster join`: its plugin still runs, but the member is
// reported down within the TTL; SIGCONT brings it back.
func TestHostFrozenReportedDown(t *testing.T) {
	b := backendFlags(t, "plugin") // heartbeat 200ms, TTL 1s
	j := start(t, append(b, "join", "compute", "h1")...)
	var plugins []int
	eventually(t, 15*time.Second, "h1 up", func() bool {
		_, _, code := muster(t, append(b, "is-up", "compute", "h1")...)
		plugins = pluginOf(t, j.Process.Pid)
		return code == 0 && len(plugins) == 1
	})
	if err := syscall.Kill(j.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(j.Process.Pid, syscall.SIGCONT)
	stopped := time.Now()
	eventually(t, 5*time.Second, "h1 down while frozen", func() bool {
		out, _, code := muster(t, append(b, "is-up", "compute", "h1")...)
		return code == 1 && out == "down\n"
	})
	t.Logf("frozen host reported down after %v (TTL 1s)", time.Since(stopped).Round(time.Millisecond))
	if !alive(plugins[0]) {
		t.Log("the plugin ended with its session; the host starts a new one on SIGCONT")
	}
	if err := syscall.Kill(j.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "h1 up again after SIGCONT", func() bool {
		_, _, code := muster(t, append(b, "is-up", "compute", "h1")...)
		return code == 0
	})
}
