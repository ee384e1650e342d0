package file_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/servicegroup/driver"
)

const childEnv = "MUSTER_FILE_TEST_CHILD" // "hold|dir|member|ttl" or "count|dir|member|counter|rounds"

// TestChildProcess is not a test: the tests below run the test binary again
// with childEnv set, and this is the child. As "hold", it joins group "g",
// takes lock "L", says "ready <token>", and heartbeats until its session is
// lost, when it says "lost" and exits. As "count", it increments a counter
// file under lock "counter" (see increment), says "done" and exits.
func TestChildProcess(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return // the os/exec helper-process idiom: only a child does work
	}
	parts := strings.Split(spec, "|")
	if parts[0] == "flock" { // hold the directory's flock until killed
		f, err := os.OpenFile(filepath.Join(parts[1], "lock"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		fmt.Println("ready")
		select {}
	}
	if parts[0] == "count" {
		d, err := file.Open(bg, driver.Options{URL: dirURL(parts[1]), Member: parts[2], TTL: long})
		if err != nil {
			t.Fatal(err)
		}
		rounds, _ := strconv.Atoi(parts[4])
		if err := increment(d, parts[3], rounds); err != nil {
			t.Fatal(err)
		}
		fmt.Println("done")
		_ = d.Close(bg)
		return
	}
	ttl, err := time.ParseDuration(parts[3])
	if err != nil {
		t.Fatal(err)
	}
	d, err := file.Open(bg, driver.Options{URL: dirURL(parts[1]), Member: parts[2], TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	join(t, d, "g", nil)
	tok, err := d.TryLock(bg, "L")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ready %d\n", tok)
	for {
		time.Sleep(ttl / 5)
		if err := d.Heartbeat(bg); err != nil {
			fmt.Printf("lost: %v\n", err)
			os.Exit(0)
		}
	}
}

type child struct {
	cmd   *exec.Cmd
	lines chan string
	token driver.Token
}

func startChild(t *testing.T, dir, member string, ttl time.Duration) *child {
	t.Helper()
	c := spawn(t, "hold", dir, member, ttl.String())
	line := c.next(t, 30*time.Second)
	if _, err := fmt.Sscanf(line, "ready %d", &c.token); err != nil {
		t.Fatalf("child said %q", line)
	}
	return c
}

// spawn runs the test binary as a child (see TestChildProcess); args
// follow the mode in childEnv.
func spawn(t *testing.T, mode string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(append([]string{mode}, args...), "|"))
	out, err := cmd.StdoutPipe()
	must(t, err, "pipe")
	cmd.Stderr = os.Stderr
	must(t, cmd.Start(), "start child")
	c := &child{cmd: cmd, lines: make(chan string, 16)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c
}

func (c *child) next(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatal("the child's output ended")
		}
		return l
	case <-time.After(within):
		t.Fatalf("the child said nothing within %v", within)
	}
	return ""
}

// TestKilledProcessVanishesAtOnce: a process killed with -9 runs no Close,
// but its session record names its pid, and a reader on the same host (in
// its pid namespace) sees the process gone: its member is not listed and
// its lock is free at once, not after the TTL.
func TestKilledProcessVanishesAtOnce(t *testing.T) {
	dir := t.TempDir()
	const ttl = time.Second
	c := startChild(t, dir, "child", ttl)
	obs := open(t, dir, "observer", long)
	if ids := memberIDs(t, obs, "g"); !slices.Equal(ids, []string{"child"}) {
		t.Fatalf("members = %v", ids)
	}
	if h, err := obs.LockHolder(bg, "L"); err != nil || h.Member != "child" {
		t.Fatalf("holder = %+v, %v", h, err)
	}
	must(t, c.cmd.Process.Kill(), "kill -9")
	_ = c.cmd.Wait() // reaped: its pid is gone
	if ids := memberIDs(t, obs, "g"); len(ids) != 0 {
		t.Fatalf("members right after the kill -9: %v; want none", ids)
	}
	if _, err := obs.LockHolder(bg, "L"); !errors.Is(err, driver.ErrNotLocked) {
		t.Fatalf("the killed holder's lock right after the kill: %v; want free", err)
	}
	tok, err := obs.TryLock(bg, "L")
	must(t, err, "lock after the holder died")
	if tok <= c.token {
		t.Fatalf("token %d not above the dead holder's %d", tok, c.token)
	}
	if exists(filepath.Join(dir, "groups", "g", "child")) {
		t.Error("the dead member's record was left behind")
	}
}

// TestFrozenProcessLosesItsLock freezes the holder (SIGSTOP): it holds no
// flock while it holds the muster lock, so others get the lock after the
// TTL, and the holder, thawed, learns it lost its session.
func TestFrozenProcessLosesItsLock(t *testing.T) {
	dir := t.TempDir()
	const ttl = time.Second
	c := startChild(t, dir, "child", ttl)
	obs := open(t, dir, "observer", long)
	must(t, c.cmd.Process.Signal(syscall.SIGSTOP), "SIGSTOP")
	var tok driver.Token
	eventually(t, 10*time.Second, "the frozen holder's lock is free", func() bool {
		var err error
		tok, err = obs.TryLock(bg, "L")
		if err != nil && !errors.Is(err, driver.ErrLockHeld) {
			t.Fatal(err)
		}
		return err == nil
	})
	if tok <= c.token {
		t.Fatalf("token %d not above the frozen holder's %d", tok, c.token)
	}
	if ids := memberIDs(t, obs, "g"); len(ids) != 0 {
		t.Fatalf("the frozen member is still listed: %v", ids)
	}
	must(t, c.cmd.Process.Signal(syscall.SIGCONT), "SIGCONT")
	if l := c.next(t, 10*time.Second); !strings.HasPrefix(l, "lost") || !strings.Contains(l, "session lost") {
		t.Fatalf("the thawed child said %q", l)
	}
	if h, err := obs.LockHolder(bg, "L"); err != nil || h.Member != "observer" || h.Token != tok {
		t.Fatalf("holder after the thaw = %+v, %v", h, err)
	}
}

// TestMutualExclusionAcrossProcesses is TestMutualExclusion with the
// sessions in processes of their own: only flock(2) serializes them.
func TestMutualExclusionAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(t.TempDir(), "counter")
	must(t, os.WriteFile(counter, []byte("0"), 0o600), "counter")
	const procs, rounds = 3, 40
	var children []*child
	for i := range procs {
		children = append(children, spawn(t, "count", dir, fmt.Sprintf("p%d", i), counter, strconv.Itoa(rounds)))
	}
	d := open(t, dir, "parent", long)
	if err := increment(d, counter, rounds); err != nil {
		t.Fatal(err)
	}
	for _, c := range children {
		if l := c.next(t, 60*time.Second); l != "done" {
			t.Fatalf("a child said %q", l)
		}
		must(t, c.cmd.Wait(), "child exit")
	}
	b, _ := os.ReadFile(counter)
	if got, want := string(b), strconv.Itoa((procs+1)*rounds); got != want {
		t.Fatalf("counter = %s, want %s", got, want)
	}
}

// TestFrozenFlockHolder: another process holds the directory's flock and
// is frozen (SIGSTOP). Calls that need the flock, Close included, fail
// within their context with an error naming the holder's pid; none hangs.
func TestFrozenFlockHolder(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir, "m", long)
	join(t, d, "g", nil)
	c := spawn(t, "flock", dir)
	if l := c.next(t, 30*time.Second); l != "ready" {
		t.Fatalf("child said %q", l)
	}
	must(t, c.cmd.Process.Signal(syscall.SIGSTOP), "SIGSTOP")
	defer func() { _ = c.cmd.Process.Signal(syscall.SIGCONT) }()
	pid := fmt.Sprintf("pid %d", c.cmd.Process.Pid)
	call := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- f(ctx) }()
		select {
		case err := <-errc:
			mustIs(t, err, context.DeadlineExceeded, what)
			if !strings.Contains(err.Error(), pid) {
				t.Errorf("%s: error %q does not name the holder (%s)", what, err, pid)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s hangs behind a frozen flock holder", what)
		}
	}
	call("lock", func(ctx context.Context) error { _, err := d.TryLock(ctx, "L"); return err })
	call("leave", func(ctx context.Context) error { return d.Leave(ctx, "g") })
	call("close", d.Close)
	<-d.Done()
}
