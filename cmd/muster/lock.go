package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

func init() {
	commands["lock"] = &command{
		usage: "lock NAME [--timeout D] [--no-wait] [--kill-after D] -- CMD [ARGS...]",
		help: "run CMD while holding the lock NAME (like flock(1)); exits with CMD's status; MUSTER_FENCING_TOKEN is set for CMD; " +
			"CMD runs in its own process group, which gets SIGTERM, then SIGKILL after --kill-after, when the lock is lost or muster is signalled; the lock is released only once the whole group is gone",
		flags: func(fs *flag.FlagSet, o *opts) {
			fs.DurationVar(&o.timeout, "timeout", 0, "give up waiting for the lock after `duration` (0: wait forever); exit 1")
			fs.BoolVar(&o.noWait, "no-wait", false, "fail at once if the lock is held")
			fs.DurationVar(&lockKillAfter, "kill-after", defaultKillAfter, "SIGKILL CMD's process group this `duration` after SIGTERM/SIGINT")
		},
		nargs: atLeast(2),
		run:   runLock,
	}
}

// defaultKillAfter is the grace CMD's process group gets between SIGTERM
// (or the forwarded SIGINT) and SIGKILL.
const defaultKillAfter = 5 * time.Second

// lockKillAfter is --kill-after (kept here, not in opts, as only lock has it).
var lockKillAfter time.Duration

// groupPoll is how often the end of CMD's process group is checked.
const groupPoll = 20 * time.Millisecond

func runLock(ctx context.Context, e *env, args []string) error {
	name, argv := args[0], args[1:]
	if lockKillAfter < 0 {
		return fmt.Errorf("lock: --kill-after %v is negative", lockKillAfter)
	}
	if e.o.timeout < 0 {
		return fmt.Errorf("lock: --timeout %v is negative (0 waits for ever)", e.o.timeout)
	}
	// Caught before the lock is taken, so none is missed between Acquire
	// and CMD's start; ctx (cancelled by the same signals) ends Acquire.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	sg, err := e.open(ctx, "")
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	l := sg.Lock(name)
	var tok servicegroup.Token
	timedOut := false
	switch {
	case e.o.noWait:
		tok, err = l.TryAcquire(ctx)
	case e.o.timeout > 0:
		wctx, cancel := context.WithTimeout(ctx, e.o.timeout)
		tok, err = l.Acquire(wctx)
		timedOut = err != nil && errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
	default:
		tok, err = l.Acquire(ctx)
	}
	if timedOut {
		return &exitError{code: 1, err: fmt.Errorf("lock %q: still held after %v", name, e.o.timeout)}
	}
	if errors.Is(err, servicegroup.ErrLockHeld) {
		return &exitError{code: 1, err: fmt.Errorf("lock %q: held by another", name)}
	}
	if err != nil {
		return err
	}
	defer func() { _ = l.Release(context.Background()) }()

	// Orphans of CMD's group are re-parented to muster, which reaps them,
	// so their end is seen even where no init reaps (a container).
	becomeSubreaper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	cmd.Env = append(os.Environ(), "MUSTER_FENCING_TOKEN="+strconv.FormatUint(uint64(tok), 10), "MUSTER_LOCK="+name)
	// Its own process group, so that CMD and everything it starts can be
	// stopped together: the protected work must end before the lock goes.
	// Should muster itself be killed (SIGKILL), CMD gets SIGKILL too.
	cmd.SysProcAttr = groupAttr()
	started := make(chan error, 1)
	waited := make(chan error, 1)
	go func() {
		// The parent-death signal (see groupAttr) follows the thread that
		// forked CMD: keep that thread for as long as CMD runs.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		// As a shell (and flock(1)) do: 127 when CMD is not found, 126
		// when it cannot be run.
		code, why := 126, err.Error()
		var pe *os.PathError
		if errors.As(err, &pe) {
			why = pe.Err.Error()
		}
		if errors.Is(err, exec.ErrNotFound) {
			why = "not found in $PATH"
		}
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		return &exitError{code: code, err: fmt.Errorf("lock %s: cannot run %s: %s", name, argv[0], why)}
	}
	g := &procGroup{pgid: cmd.Process.Pid, killAfter: lockKillAfter}
	lost := false
	done := ctx.Done()
	for {
		select {
		case err := <-waited:
			// CMD is gone; whatever it left running in its group is still
			// under the lock: end it (SIGTERM, then SIGKILL) before release.
			g.terminate(syscall.SIGTERM)
			g.waitGone(e)
			if lost {
				return &exitError{code: 2, err: fmt.Errorf("lock %q lost while %s ran", name, argv[0])}
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
					return &exitError{code: 128 + int(st.Signal())}
				}
				return &exitError{code: ee.ExitCode()}
			}
			return err
		case sig := <-sigs:
			// Pass SIGINT/SIGTERM on to the whole group; the lock is
			// released when the group is gone.
			g.terminate(sig.(syscall.Signal))
			done = nil
		case <-done:
			// The signal was taken by the context's handler only.
			g.terminate(syscall.SIGTERM)
			done = nil
		case <-l.Lost():
			// Without the lock CMD is no longer safe to run.
			if !lost {
				lost = true
				fmt.Fprintf(e.stderr, "muster: lock %q lost; terminating %s (process group %d)\n", name, argv[0], g.pgid)
				g.terminate(syscall.SIGTERM)
			}
		case <-g.killTimer():
			g.kill()
		}
	}
}

// procGroup is CMD's process group, stopped as one.
type procGroup struct {
	pgid      int
	killAfter time.Duration
	timer     *time.Timer // SIGKILL due; nil until the group is first signalled
	killed    bool
}

// terminate sends sig to every process of the group and arms the SIGKILL
// that follows killAfter after the first signal.
func (g *procGroup) terminate(sig syscall.Signal) {
	if g.killed {
		return
	}
	_ = syscall.Kill(-g.pgid, sig)
	if g.timer == nil {
		g.timer = time.NewTimer(g.killAfter)
	}
}

// killTimer fires when SIGKILL is due (never before the group is signalled).
func (g *procGroup) killTimer() <-chan time.Time {
	if g.timer == nil || g.killed {
		return nil
	}
	return g.timer.C
}

// kill sends SIGKILL to every process of the group.
func (g *procGroup) kill() {
	g.killed = true
	_ = syscall.Kill(-g.pgid, syscall.SIGKILL)
}

// gone says whether no process of the group remains. Members that are
// muster's own children (orphans re-parented to it) are reaped first; a
// zombie still counts as a process.
func (g *procGroup) gone() bool {
	var st syscall.WaitStatus
	for {
		pid, err := syscall.Wait4(-g.pgid, &st, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			break
		}
	}
	return errors.Is(syscall.Kill(-g.pgid, 0), syscall.ESRCH)
}

// waitGone returns once no process of the group remains, sending SIGKILL
// when the grace after the first signal ends. Call it after CMD (the
// group's leader) has been waited for.
func (g *procGroup) waitGone(e *env) {
	tick := time.NewTicker(groupPoll)
	defer tick.Stop()
	warned := false
	start := time.Now()
	for !g.gone() {
		select {
		case <-tick.C:
		case <-g.killTimer():
			g.kill()
		}
		if !warned && g.killed && time.Since(start) > g.killAfter+5*time.Second {
			warned = true
			fmt.Fprintf(e.stderr, "muster: process group %d survives SIGKILL; waiting for it to end\n", g.pgid)
		}
	}
	if g.timer != nil {
		g.timer.Stop()
	}
}
