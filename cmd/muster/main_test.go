package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binDir holds muster and its plugins, built once for the black-box tests.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "muster-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// muster is the code under test, so it is race-built; the plugin
		// runs under -race in its own package's tests.
		for out, build := range map[string][]string{
			"muster":             {"-race", "."},
			"muster-plugin-file": {"../../plugins/file/cmd/muster-plugin-file"},
			// create-schema runs it (TestCreateSchemaRunsPlugin).
			"muster-plugin-postgresql": {"../../plugins/postgresql/cmd/muster-plugin-postgresql"},
		} {
			args := append([]string{"build", "-o", filepath.Join(dir, out)}, build...)
			cmd := exec.Command("go", args...)
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n", out, err)
				return 1
			}
		}
		binDir = dir
		// A race-built process sleeps a second at exit by default, to
		// catch races there; these tests start hundreds of them.
		os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		code := m.Run()
		if code == 0 {
			// Every background muster was killed and waited for.
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return code
	}())
}

// muster runs the built binary to completion.
func muster(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "muster"), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Env = append(os.Environ(), "MUSTER_CONFIG=")
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("muster %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// start runs the binary in the background; it is killed at cleanup.
func start(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "muster"), args...)
	cmd.Env = append(os.Environ(), "MUSTER_CONFIG=")
	var e bytes.Buffer
	cmd.Stderr = &e
	// Its own process group, so cleanup also ends what it started (the
	// command under "lock"), which would otherwise hold stderr open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() || strings.Contains(e.String(), "DATA RACE") {
			t.Errorf("stderr of muster %v:\n%s", args, e.String())
		}
	})
	return cmd
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// backendFlags is a fresh file backend in mode, with short timings.
func backendFlags(t *testing.T, mode string) []string {
	// A generous dial timeout: these tests start hundreds of processes on
	// a loaded machine, and a plugin's start is not what they test.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "muster.toml")
	if err := os.WriteFile(cfg, []byte("[backend]\ndial_timeout = \"30s\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", cfg, "--url", "file://" + filepath.Join(dir, "backend"), "--mode", mode,
		"--heartbeat-interval", "200ms", "--member-ttl", "1s"}
}

func oneLineError(t *testing.T, stderr string) {
	t.Helper()
	s := strings.TrimRight(stderr, "\n")
	if strings.Contains(s, "\n") || !strings.HasPrefix(s, "muster: ") || strings.Contains(s, "goroutine ") {
		t.Fatalf("want a one-line error, got:\n%s", stderr)
	}
}

// lineCmd is a background muster whose stdout lines are collected.
type lineCmd struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lineCmd) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lineCmd) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimRight(l.buf.String(), "\n"), "\n")
}

func startOut(t *testing.T, args ...string) *lineCmd {
	t.Helper()
	out := &lineCmd{}
	cmd := exec.Command(filepath.Join(binDir, "muster"), args...)
	cmd.Env = append(os.Environ(), "MUSTER_CONFIG=")
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() || strings.Contains(stderr.String(), "DATA RACE") {
			t.Errorf("stderr of muster %v:\n%s\nstdout:\n%s", args, stderr.String(), strings.Join(out.lines(), "\n"))
		}
	})
	return out
}
