package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin/runner"
	"go.uber.org/zap"
)

// stderrDrain bounds how long Wait waits for the plugin's stderr to reach
// EOF after the process exited (a grandchild may hold it open).
const stderrDrain = time.Second

// process runs one plugin binary for go-plugin (its runner.Runner). It
// exists for one reason: to read the plugin's stderr itself. go-plugin's
// parser panics, in a goroutine nobody can recover, on a JSON line whose
// "@message" is not a string; so go-plugin gets an empty stderr and
// bridgeStderr logs the real one.
type process struct {
	path      string
	cmd       *exec.Cmd
	log       *zap.Logger
	socketDir string // go-plugin's, which it removes only for a started plugin

	stdout  io.ReadCloser
	stderrR *os.File
	stderrW *os.File
	drained chan struct{} // closed when bridgeStderr returned

	// quiet ends the empty stderr go-plugin reads: when the real one
	// ended, or on Kill. It must not end sooner: go-plugin's Start adds to
	// a WaitGroup that its stderr reader's exit may already be waited on.
	quiet     chan struct{}
	quietOnce sync.Once

	mu      sync.Mutex
	pid     int
	started bool
	killed  bool // Kill came first: Start must not start it

	exited  chan struct{} // closed when the process has been waited for
	exitErr error         // why it exited, once exited is closed
}

var _ runner.Runner = (*process)(nil)

func newProcess(path string, spec *exec.Cmd, env []string, socketDir string, log *zap.Logger) (*process, error) {
	cmd := exec.Command(path)
	cmd.Env = append(append([]string(nil), spec.Env...), env...)
	cmd.Stdin = nil // /dev/null: the host's stdin is not the plugin's
	// The kernel's half of "dies with its host"; the plugin sets it too,
	// and watches its parent pid.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		stdout.Close()
		return nil, err
	}
	cmd.Stderr = w
	return &process{
		path: path, cmd: cmd, log: log, socketDir: socketDir,
		stdout: stdout, stderrR: r, stderrW: w,
		drained: make(chan struct{}),
		quiet:   make(chan struct{}),
		exited:  make(chan struct{}),
	}, nil
}

func (p *process) Start(context.Context) error {
	p.mu.Lock()
	err := errors.New("plugin start cancelled")
	if !p.killed {
		err = p.cmd.Start()
	}
	p.stderrW.Close() // the child has its copy
	if err != nil {
		p.mu.Unlock()
		p.stderrR.Close()
		p.stdout.Close()
		if p.socketDir != "" {
			os.RemoveAll(p.socketDir)
		}
		close(p.drained)
		p.exitErr = err
		close(p.exited)
		return fmt.Errorf("start plugin %s: %w", p.path, err)
	}
	p.pid = p.cmd.Process.Pid
	p.started = true
	p.mu.Unlock()
	log := p.log.With(zap.Int("pid", p.pid))
	go func() {
		defer p.hush()
		defer close(p.drained)
		bridgeStderr(p.stderrR, log)
	}()
	return nil
}

// Wait reaps the process; go-plugin calls it once, from its own goroutine,
// after stdout reached EOF.
func (p *process) Wait(context.Context) error {
	err := p.cmd.Wait()
	select {
	case <-p.drained:
	case <-time.After(stderrDrain):
	}
	p.stderrR.Close()
	<-p.drained
	p.exitErr = err
	close(p.exited)
	return err
}

// Kill sends SIGKILL; killing an exited process is not an error.
func (p *process) Kill(context.Context) error {
	p.mu.Lock()
	p.killed = true
	started := p.started
	p.mu.Unlock()
	if !started {
		return nil
	}
	defer p.hush()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Exited is closed once the process has exited and been reaped.
func (p *process) Exited() <-chan struct{} { return p.exited }

// ExitReason says how the process ended; valid once Exited is closed.
func (p *process) ExitReason() string {
	if p.exitErr == nil {
		return "plugin process exited"
	}
	return "plugin process exited: " + p.exitErr.Error()
}

// PID is the process id, 0 before Start.
func (p *process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

func (p *process) Stdout() io.ReadCloser { return p.stdout }

// Stderr is empty for go-plugin (see process); it ends with the real one.
func (p *process) Stderr() io.ReadCloser { return quietReader(p.quiet) }

func (p *process) hush() { p.quietOnce.Do(func() { close(p.quiet) }) }

// quietReader reads nothing, and EOF once its channel is closed.
type quietReader <-chan struct{}

func (r quietReader) Read([]byte) (int, error) {
	<-r
	return 0, io.EOF
}

func (r quietReader) Close() error { return nil }

func (p *process) Name() string { return p.path }

func (p *process) ID() string {
	if pid := p.PID(); pid != 0 {
		return strconv.Itoa(pid)
	}
	return ""
}

func (p *process) Diagnose(context.Context) string {
	return "the plugin may be built for another OS or architecture, lack libraries, " +
		"not be executable, or not be a muster plugin (its stderr is in the log)"
}

func (p *process) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (p *process) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// runnerFunc adapts newProcess to go-plugin's ClientConfig.RunnerFunc and
// keeps the process for the caller.
func runnerFunc(path string, env []string, log *zap.Logger, keep func(*process)) func(hclog.Logger, *exec.Cmd, string) (runner.Runner, error) {
	return func(_ hclog.Logger, spec *exec.Cmd, socketDir string) (runner.Runner, error) {
		p, err := newProcess(path, spec, env, socketDir, log)
		if err != nil {
			return nil, err
		}
		keep(p)
		return p, nil
	}
}
