// Package testserver starts real backend servers from Debian's packages for
// tests and benchmarks: on free loopback ports, in temp dirs, stopped and
// removed at the end, their logs kept for a failing test. A server can be
// stopped, killed with SIGKILL and restarted on the same port, empty or
// with its data.
//
// Start one server per test package (in TestMain) and give each test a key
// namespace of its own: starting servers per test does not fit the suite's
// budget on a 2-core machine.
package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrMissing is returned (wrapped) when a server's binary is not installed.
// Outside CI a test may skip on it; under CI=true Require fails instead.
var ErrMissing = errors.New("testserver: server binary not installed")

// CI reports whether the tests run under CI (CI=true), where a missing
// server is a failure, never a skip.
func CI() bool { return os.Getenv("CI") == "true" }

// Missing reports err as a skip outside CI and a failure under CI=true.
// It is for tests whose server could not be started.
func Missing(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrMissing) && !CI() {
		t.Skip(err)
	}
	t.Fatal(err)
}

// Lookup finds a server binary on PATH or at one of the absolute paths
// given, or returns ErrMissing naming the Debian package that ships it.
func Lookup(pkg string, names ...string) (string, error) {
	for _, n := range names {
		if filepath.IsAbs(n) {
			if _, err := os.Stat(n); err == nil {
				return n, nil
			}
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %v (Debian package %s; make test installs it)", ErrMissing, names, pkg)
}

// FreePort returns a loopback TCP port nobody listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testserver: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Spec describes how to run one server process.
type Spec struct {
	// Name is for logs and errors ("redis", "zookeeper-2").
	Name string
	// Command returns the argv (argv[0] a path) for a server on port with
	// its data in dir. It is called on every (re)start.
	Command func(port int, dir string) []string
	// Env is added to the process's environment.
	Env []string
	// Setup prepares dir before the first start (config files, initdb);
	// nil for none. It runs again after a restart without data.
	Setup func(port int, dir string) error
	// Ready returns nil once the server answers on addr.
	Ready func(ctx context.Context, addr string) error
	// ReadyTimeout bounds one start; 30 s if zero.
	ReadyTimeout time.Duration
	// Stop, when set, asks the server to stop gracefully (pg_ctl stop);
	// otherwise Stop sends SIGTERM.
	Stop func(s *Server) error
	// Cleanup, when set, removes what Setup made outside dir; Close runs
	// it after the server is gone.
	Cleanup func(dir string)
}

// Server is one running (or stopped) server process.
type Server struct {
	spec Spec
	// Port is the server's loopback port; it stays the same across restarts.
	Port int
	// Dir is the server's data directory, removed by Close.
	Dir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{}
	logs bytes.Buffer
}

// Addr is "127.0.0.1:<port>".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// Start prepares a temp dir and a free port, starts the server and waits
// until it is ready. Close stops it and removes its dir.
func Start(spec Spec) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	return StartOn(spec, port)
}

// StartOn is Start on a given port (for a cluster whose members must know
// each other's ports in advance).
func StartOn(spec Spec, port int) (*Server, error) {
	dir, err := os.MkdirTemp("", "muster-"+spec.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("testserver: %s: %w", spec.Name, err)
	}
	// Servers that drop root (postgres, memcached -u) must reach their dir.
	_ = os.Chmod(dir, 0o777)
	s := &Server{spec: spec, Port: port, Dir: dir}
	if spec.Setup != nil {
		if err := spec.Setup(port, dir); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("testserver: %s setup: %w", spec.Name, err)
		}
	}
	if err := s.start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Logs is everything the server printed so far (all its runs).
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// LogOnFailure prints the server's logs at the end of t if t failed.
func (s *Server) LogOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s logs:\n%s", s.spec.Name, s.Logs())
		}
	})
}

type lockedWriter struct{ s *Server }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	// Keep the tail: a long-running server must not grow without bound.
	if w.s.logs.Len() > 1<<20 {
		tail := append([]byte(nil), w.s.logs.Bytes()[w.s.logs.Len()-(512<<10):]...)
		w.s.logs.Reset()
		w.s.logs.Write(tail)
	}
	return w.s.logs.Write(p)
}

func (s *Server) start() error {
	argv := s.spec.Command(s.Port, s.Dir)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), s.spec.Env...)
	cmd.Stdout, cmd.Stderr = lockedWriter{s}, lockedWriter{s}
	// Its own process group, so a kill reaches the children it forks, and
	// it dies with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testserver: start %s: %w", s.spec.Name, err)
	}
	exit := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exit) }()
	s.mu.Lock()
	s.cmd, s.exit = cmd, exit
	s.mu.Unlock()

	timeout := s.spec.ReadyTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		select {
		case <-exit:
			return fmt.Errorf("testserver: %s exited during start-up:\n%s", s.spec.Name, s.Logs())
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		last = s.spec.Ready(pctx, s.Addr())
		pcancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			s.Kill()
			return fmt.Errorf("testserver: %s not ready on %s within %v: %v\n%s", s.spec.Name, s.Addr(), timeout, last, s.Logs())
		case <-exit:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	exit := s.exit
	s.mu.Unlock()
	if exit == nil {
		return false
	}
	select {
	case <-exit:
		return false
	default:
		return true
	}
}

// PID is the server process's pid, 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) signal(sig syscall.Signal, wait time.Duration) error {
	s.mu.Lock()
	cmd, exit := s.cmd, s.exit
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-exit:
		return nil
	case <-time.After(wait):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exit
		return fmt.Errorf("testserver: %s ignored %v for %v; killed", s.spec.Name, sig, wait)
	}
}

// Stop stops the server gracefully and waits for it to exit.
func (s *Server) Stop() error {
	if !s.Running() {
		return nil
	}
	if s.spec.Stop != nil {
		if err := s.spec.Stop(s); err == nil {
			return s.signal(0, 15*time.Second)
		}
	}
	return s.signal(syscall.SIGTERM, 15*time.Second)
}

// Kill ends the server with SIGKILL (a crash) and waits for it to exit.
func (s *Server) Kill() error {
	if !s.Running() {
		return nil
	}
	return s.signal(syscall.SIGKILL, 5*time.Second)
}

// Freeze stops the server with SIGSTOP until Thaw.
func (s *Server) Freeze() error { return s.groupSignal(syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (s *Server) Thaw() error { return s.groupSignal(syscall.SIGCONT) }

func (s *Server) groupSignal(sig syscall.Signal) error {
	pid := s.PID()
	if pid == 0 {
		return fmt.Errorf("testserver: %s is not running", s.spec.Name)
	}
	return syscall.Kill(-pid, sig)
}

// Restart starts a stopped or killed server again on the same port. With
// keepData false its dir is emptied and set up anew first: a server that
// lost everything.
func (s *Server) Restart(keepData bool) error {
	if s.Running() {
		if err := s.Stop(); err != nil {
			return err
		}
	}
	if !keepData {
		entries, _ := os.ReadDir(s.Dir)
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(s.Dir, e.Name())); err != nil {
				return fmt.Errorf("testserver: %s: %w", s.spec.Name, err)
			}
		}
		if s.spec.Setup != nil {
			if err := s.spec.Setup(s.Port, s.Dir); err != nil {
				return fmt.Errorf("testserver: %s setup: %w", s.spec.Name, err)
			}
		}
	}
	return s.start()
}

// Close kills the server and removes its dir. It is idempotent.
func (s *Server) Close() {
	_ = s.Kill()
	if s.spec.Cleanup != nil {
		s.spec.Cleanup(s.Dir)
	}
	_ = os.RemoveAll(s.Dir)
}

// DialReady is a Ready function for servers where an accepted TCP
// connection is enough.
func DialReady(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
