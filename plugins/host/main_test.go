package host_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Test binaries: the real file plugin; the same with hostile stderr; and
// with a polling Watch and Lock; and the memory backend as a plugin.
var pluginDir string

const (
	envRole      = "MUSTER_HOST_TEST_ROLE"
	envPluginDir = "MUSTER_HOST_TEST_PLUGIN_DIR"
	envURL       = "MUSTER_HOST_TEST_URL"
	envTTL       = "MUSTER_HOST_TEST_TTL"
)

func TestMain(m *testing.M) {
	if os.Getenv(envRole) == "host" {
		os.Exit(runHost())
	}
	dir, err := os.MkdirTemp("", "muster-host-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pluginDir = dir
	os.Setenv(envPluginDir, dir) // for the package's internal benchmarks
	build := func(name, pkg string) error {
		// Without -race: the suite runs one plugin process per session, and
		// race-built ones cost several times the CPU and memory. The plugin
		// side's code runs under -race in plugins/serve and in-process.
		args := []string{"build"}
		args = append(args, "-o", filepath.Join(dir, name), pkg)
		cmd := exec.Command("go", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	code := 0
	if err := build(host.BinaryName("file"), "github.com/musterhq/muster/plugins/file/cmd/muster-plugin-file"); err != nil {
		fmt.Fprintln(os.Stderr, "build file plugin:", err)
		code = 2
	} else if err := build(host.BinaryName("hostile"), "./testdata/hostile"); err != nil {
		fmt.Fprintln(os.Stderr, "build hostile plugin:", err)
		code = 2
	} else if err := build(host.BinaryName("watching"), "./testdata/watching"); err != nil {
		fmt.Fprintln(os.Stderr, "build watching plugin:", err)
		code = 2
	} else if err := build(host.BinaryName("memory"), "./testdata/memory"); err != nil {
		fmt.Fprintln(os.Stderr, "build memory plugin:", err)
		code = 2
	} else {
		code = m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
			}
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// runHost is the test binary re-executed as a host: it starts a file
// plugin, joins group g, prints the plugin's pid, and heartbeats (three
// times per TTL) until it is killed.
func runHost() int {
	cfg := host.Config{Dir: os.Getenv(envPluginDir)}
	ctx := context.Background()
	ttl, err := time.ParseDuration(os.Getenv(envTTL))
	if err != nil {
		ttl = time.Minute
	}
	// Logging at warn, as the muster command does: the plugin then writes
	// to its stderr pipe when its host is gone.
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.Lock(os.Stderr), zapcore.WarnLevel))
	d, err := cfg.Factory("file")(ctx, driver.Options{
		URL: os.Getenv(envURL), Member: "child", Instance: "child", TTL: ttl, Logger: log,
	})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if err := d.CreateGroup(ctx, "g"); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if err := d.Join(ctx, "g", nil); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	pid, _ := host.PID(d)
	fmt.Println("pid", pid)
	for {
		time.Sleep(ttl / 3)
		_ = d.Heartbeat(ctx)
	}
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func waitGone(t *testing.T, pid int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for alive(pid) {
		if time.Since(start) > within {
			t.Fatalf("process %d still alive after %v", pid, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// readPID reads "pid N" from a child host's stdout.
func readPID(t *testing.T, sc *bufio.Scanner) int {
	t.Helper()
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "pid "); ok {
			pid, err := strconv.Atoi(rest)
			if err != nil {
				t.Fatalf("bad pid line %q", line)
			}
			return pid
		}
		t.Fatalf("child host: %s", line)
	}
	t.Fatalf("child host exited without a pid: %v", sc.Err())
	return 0
}
