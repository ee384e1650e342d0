package host_test

// Supervision: what happens when the plugin, or its host, dies or freezes.

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
)

func TestPluginKilled(t *testing.T) {
	ctx := context.Background()
	d := openPlugin(t, host.Config{}, opts(t.TempDir(), "m", time.Minute))
	if err := d.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, d)
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Done():
		t.Logf("Done after %v", time.Since(start))
	case <-time.After(time.Second):
		t.Fatal("Done not closed within 1s of kill -9")
	}
	err := d.Join(ctx, "g", nil)
	if !errors.Is(err, driver.ErrSessionLost) {
		t.Fatalf("join after kill: %v, want ErrSessionLost", err)
	}
	t.Logf("join after kill: %v", err)
	if err := d.Heartbeat(ctx); !errors.Is(err, driver.ErrSessionLost) {
		t.Fatalf("heartbeat after kill: %v", err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatalf("close after kill: %v", err)
	}
	if alive(pid) {
		t.Fatal("plugin alive")
	}
}

func TestPluginFrozen(t *testing.T) {
	d := openPlugin(t, host.Config{}, opts(t.TempDir(), "m", 900*time.Millisecond))
	pid := pidOf(t, d)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Done():
	case <-time.After(5 * time.Second):
		syscall.Kill(pid, syscall.SIGCONT)
		t.Fatal("Done not closed for a frozen plugin")
	}
	if err := d.Heartbeat(context.Background()); !errors.Is(err, driver.ErrSessionLost) {
		t.Fatalf("heartbeat: %v", err)
	}
	waitGone(t, pid, 2*time.Second)
}

func TestCloseLeavesNoProcess(t *testing.T) {
	d := openPlugin(t, host.Config{}, opts(t.TempDir(), "m", time.Minute))
	pid := pidOf(t, d)
	if !alive(pid) {
		t.Fatal("plugin not running")
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill -0 %d after Close: %v, want ESRCH", pid, err)
	}
}

func startHost(t *testing.T, dir string, ttl time.Duration) (*exec.Cmd, int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"=host", envPluginDir+"="+pluginDir,
		envURL+"=file://"+dir, envTTL+"="+ttl.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := readPID(t, bufio.NewScanner(out))
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// Before the directory goes: the plugin closes its session in it.
		for start := time.Now(); alive(pid) && time.Since(start) < 5*time.Second; {
			time.Sleep(10 * time.Millisecond)
		}
	})
	return cmd, pid
}

func TestHostKilled(t *testing.T) {
	dir := t.TempDir()
	cmd, pid := startHost(t, dir, time.Minute)

	observer := openInProcess(t, opts(dir, "observer", time.Minute))
	if got := memberIDs(t, observer, "g"); got != "child" {
		t.Fatalf("members %q, want child", got)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	took := waitGone(t, pid, 2*time.Second)
	t.Logf("plugin exited %v after its host", took)
	if got := memberIDs(t, observer, "g"); got != "" {
		t.Fatalf("members %q after the host died, want none", got)
	}
	// It closed its session on the way out (the file backend would also
	// see its process gone, so the listing alone does not prove that): its
	// session file is removed, not left for a sweep.
	entries, err := os.ReadDir(filepath.Join(dir, "sessions"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, "sessions", e.Name()))
		if strings.Contains(string(b), `member "child"`) {
			t.Fatalf("the orphaned plugin exited without closing its session (%s left)", e.Name())
		}
	}
}

func TestHostFrozen(t *testing.T) {
	dir := t.TempDir()
	const ttl = time.Second
	cmd, pid := startHost(t, dir, ttl)
	observer := openInProcess(t, opts(dir, "observer", time.Minute))
	if got := memberIDs(t, observer, "g"); got != "child" {
		t.Fatalf("members %q, want child", got)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Signal(syscall.SIGCONT)
	start := time.Now()
	for memberIDs(t, observer, "g") != "" {
		if time.Since(start) > 2*ttl {
			t.Fatalf("frozen host still a member after %v", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("frozen host down after %v", time.Since(start))
	if !alive(pid) {
		t.Fatal("the plugin died; it should only have ended the session")
	}
}

func TestNoHeartbeat(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	observer := openInProcess(t, opts(dir, "observer", time.Minute))
	if err := observer.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	const ttl = time.Second
	d := openPlugin(t, host.Config{}, opts(dir, "agent", ttl))
	if err := d.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	// Heartbeats keep it alive past the TTL...
	for range 6 {
		time.Sleep(ttl / 3)
		if err := d.Heartbeat(ctx); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
	}
	if got := memberIDs(t, observer, "g"); got != "agent" {
		t.Fatalf("members %q while heartbeating, want agent", got)
	}
	// ...and without them the plugin ends the session.
	start := time.Now()
	select {
	case <-d.Done():
		t.Logf("Done %v after the last heartbeat", time.Since(start))
	case <-time.After(3 * ttl):
		t.Fatal("session not ended without heartbeats")
	}
	if got := memberIDs(t, observer, "g"); got != "" {
		t.Fatalf("members %q, want none", got)
	}
	err := d.Join(ctx, "g", nil)
	if !errors.Is(err, driver.ErrSessionLost) {
		t.Fatalf("join: %v, want ErrSessionLost", err)
	}
	t.Logf("join: %v", err)
}

func TestRestartBackoff(t *testing.T) {
	ctx := context.Background()
	f := host.Config{Dir: t.TempDir()}.Factory("file")
	o := opts(t.TempDir(), "m", time.Minute)
	if _, err := f(ctx, o); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("first start: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, err := f(short, o)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting to restart") {
		t.Fatalf("second start: %v", err)
	}
	time.Sleep(150 * time.Millisecond)
	if _, err := f(ctx, o); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("third start: %v", err)
	}
}

func TestCloseWithExpiredContext(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	observer := openInProcess(t, opts(dir, "observer", time.Minute))
	if err := observer.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	d := openPlugin(t, host.Config{}, opts(dir, "agent", time.Minute))
	if err := d.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Close(done); err != nil {
		t.Fatal(err)
	}
	if got := memberIDs(t, observer, "g"); got != "" {
		t.Fatalf("members %q after Close, want none", got)
	}
}
