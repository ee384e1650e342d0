package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `muster demo` to its end and checks it leaves no process
// and no directory behind.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes about 15s")
	}
	t.Parallel()
	bin, _ := buildAgentBinaries(t)
	tmp := t.TempDir()
	cmd := exec.Command(bin, "--config=", "demo")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo failed: %v\n%s", err, out.String())
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("demo still running after 90s\n%s", out.String())
	}
	t.Logf("demo ran %v", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"kill -9", "left every poller's share", "leads now", "(leader)", "logged: split:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if left := demoProcesses(bin); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		t.Errorf("left in the temp dir: %v", ents)
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out.String())
	}
}

// demoProcesses lists the processes whose executable is in bin's
// directory (muster and its plugin).
func demoProcesses(bin string) []string {
	dir := filepath.Dir(bin)
	var out []string
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		exe, err := os.Readlink(filepath.Join(p, "exe"))
		if err != nil {
			continue
		}
		if filepath.Dir(exe) == dir {
			cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
			out = append(out, filepath.Base(p)+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}
