package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

func init() {
	commands["lock"] = &command{
		usage: "lock NAME [--timeout D] [--no-wait] -- CMD [ARGS...]",
		help:  "run CMD while holding the lock NAME (like flock(1)); exits with CMD's status; MUSTER_FENCING_TOKEN is set for CMD",
		flags: func(fs *flag.FlagSet, o *opts) {
			fs.DurationVar(&o.timeout, "timeout", 0, "give up waiting after `duration` (0: wait forever)")
			fs.BoolVar(&o.noWait, "no-wait", false, "fail at once if the lock is held")
		},
		nargs: atLeast(2),
		run:   runLock,
	}
}

func runLock(ctx context.Context, e *env, args []string) error {
	name, argv := args[0], args[1:]
	sg, err := e.open(ctx, "")
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	l := sg.Lock(name)
	var tok servicegroup.Token
	switch {
	case e.o.noWait:
		tok, err = l.TryAcquire(ctx)
	case e.o.timeout > 0:
		wctx, cancel := context.WithTimeout(ctx, e.o.timeout)
		tok, err = l.Acquire(wctx)
		cancel()
	default:
		tok, err = l.Acquire(ctx)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &exitError{code: 1, err: fmt.Errorf("lock %q: still held after %v", name, e.o.timeout)}
	}
	if errors.Is(err, servicegroup.ErrLockHeld) {
		return &exitError{code: 1, err: fmt.Errorf("lock %q: held by another", name)}
	}
	if err != nil {
		return err
	}
	defer func() { _ = l.Release(context.Background()) }()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	cmd.Env = append(os.Environ(), "MUSTER_FENCING_TOKEN="+strconv.FormatUint(uint64(tok), 10), "MUSTER_LOCK="+name)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("lock %q: %v", name, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for {
		select {
		case err := <-waited:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
					return &exitError{code: 128 + int(st.Signal())}
				}
				return &exitError{code: ee.ExitCode()}
			}
			return err
		case <-ctx.Done():
			// Pass SIGINT/SIGTERM on; the lock is released when CMD ends.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			ctx = context.Background()
		case <-l.Lost():
			// Without the lock CMD is no longer safe to run.
			fmt.Fprintf(e.stderr, "muster: lock %q lost; terminating %s\n", name, argv[0])
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-waited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-waited
			}
			return &exitError{code: 2, err: fmt.Errorf("lock %q lost while %s ran", name, argv[0])}
		}
	}
}
