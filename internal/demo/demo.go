// Package demo is `muster demo`: a fleet of agents on one host, shown live.
// It starts compute and central agents as child processes of the muster
// binary over a file backend in a temporary directory, prints who is up, who
// leads and how the central agents split the polling, then kills -9 a
// compute agent and the leading central agent and shows the others notice
// and take over. It cleans up its processes and directory when it ends, by
// itself or on Ctrl-C.
package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

// Options configure Run.
type Options struct {
	// Binary is the muster binary the agents run as.
	Binary string
	// Mode is "plugin", "inprocess" or "" (plugin if muster-plugin-file is
	// next to Binary and works, else in-process).
	Mode string
	// Out receives the show.
	Out io.Writer
	// Computes and Centrals are how many agents of each kind to start.
	// Defaults 3 and 2.
	Computes, Centrals int
	// HeartbeatInterval, MemberTTL and PollInterval of the agents. Defaults
	// 250ms, 1.5s, 1s.
	HeartbeatInterval, MemberTTL, PollInterval time.Duration
	// Frame is the time between two views. Default 1s.
	Frame time.Duration
}

// child is one agent process.
type child struct {
	name, kind string
	cmd        *exec.Cmd
	log        string
	done       chan struct{} // closed when it has exited and been waited for
}

type show struct {
	o        Options
	dir      string
	url      string
	mode     string
	obs      *servicegroup.ServiceGroup
	start    time.Time
	client   *http.Client
	mu       sync.Mutex
	children []*child
	killed   map[string]bool
}

// Run runs the demo until it ends or ctx is cancelled; either way every
// child process is killed and waited for, and the temporary directory is
// removed, before it returns.
func Run(ctx context.Context, o Options) (err error) {
	if o.Computes == 0 {
		o.Computes = 3
	}
	if o.Centrals == 0 {
		o.Centrals = 2
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 250 * time.Millisecond
	}
	if o.MemberTTL == 0 {
		o.MemberTTL = 1500 * time.Millisecond
	}
	if o.PollInterval == 0 {
		o.PollInterval = time.Second
	}
	if o.Frame == 0 {
		o.Frame = time.Second
	}
	dir, err := os.MkdirTemp("", "muster-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return err
	}
	s := &show{o: o, dir: dir, url: "file://" + filepath.Join(dir, "backend"),
		start: time.Now(), client: &http.Client{Timeout: time.Second}}
	defer s.stopAll()

	if err := s.openObserver(ctx); err != nil {
		return err
	}
	defer s.obs.Close(context.Background())

	err = s.run(ctx)
	if ctx.Err() != nil {
		s.say("interrupted; stopping the agents")
		return nil
	}
	return err
}

// openObserver picks the mode and opens the demo's own session, which only
// reads.
func (s *show) openObserver(ctx context.Context) error {
	open := func(mode string) error {
		sg, err := servicegroup.Open(ctx, servicegroup.Config{
			URL: s.url, Member: "demo-observer", Mode: servicegroup.Mode(mode),
			HeartbeatInterval: s.o.HeartbeatInterval, MemberTTL: s.o.MemberTTL,
		})
		if err == nil {
			s.obs, s.mode = sg, mode
		}
		return err
	}
	if s.o.Mode != "" {
		return open(s.o.Mode)
	}
	plugin := filepath.Join(filepath.Dir(s.o.Binary), "muster-plugin-file")
	if _, err := os.Stat(plugin); err != nil {
		s.say("no muster-plugin-file next to muster: the file backend runs in-process")
		return open("inprocess")
	}
	if err := open("plugin"); err != nil {
		s.say("plugin mode does not work here (%v): the file backend runs in-process", err)
		return open("inprocess")
	}
	s.say("the file backend runs as a plugin (%s)", plugin)
	return nil
}

func (s *show) say(format string, args ...any) {
	fmt.Fprintf(s.o.Out, format+"\n", args...)
}

func (s *show) headline(format string, args ...any) {
	fmt.Fprintf(s.o.Out, "\n== %s\n", fmt.Sprintf(format, args...))
}

func (s *show) run(ctx context.Context) error {
	s.say("muster demo: %d compute agents and %d central agents on one host", s.o.Computes, s.o.Centrals)
	s.say("backend %s (mode %s), heartbeat %v, member TTL %v, poll interval %v",
		s.url, s.mode, s.o.HeartbeatInterval, s.o.MemberTTL, s.o.PollInterval)

	s.headline("starting the agents")
	var computes, centrals []string
	for i := 1; i <= s.o.Computes; i++ {
		name := fmt.Sprintf("compute-%d", i)
		if err := s.spawn(name, "compute"); err != nil {
			return err
		}
		computes = append(computes, name)
	}
	for i := 1; i <= s.o.Centrals; i++ {
		name := fmt.Sprintf("central-%d", i)
		if err := s.spawn(name, "central", "--poll-interval", s.o.PollInterval.String(),
			"--output", filepath.Join(s.dir, name+".jsonl")); err != nil {
			return err
		}
		centrals = append(centrals, name)
	}
	if _, err := s.until(ctx, 20*time.Second, func(v view) bool { return v.settled(computes, centrals) }); err != nil {
		return fmt.Errorf("the agents did not settle: %w", err)
	}
	s.say("-> every compute agent is polled by exactly one central agent")
	if err := s.frames(ctx, 2); err != nil {
		return err
	}
	s.leaderLog(ctx)

	victim := computes[1]
	s.headline("kill -9 %s (a compute host dies)", victim)
	t0 := time.Now()
	s.kill(victim)
	computes = slices.DeleteFunc(computes, func(n string) bool { return n == victim })
	if _, err := s.until(ctx, 15*time.Second, func(v view) bool { return v.settled(computes, centrals) }); err != nil {
		return fmt.Errorf("%s was not dropped: %w", victim, err)
	}
	s.say("-> %s expired and left every poller's share after %.1fs (member TTL %v)", victim, time.Since(t0).Seconds(), s.o.MemberTTL)

	v, err := s.look(ctx)
	if err != nil {
		return err
	}
	leader := v.leader
	if leader == "" || !slices.Contains(centrals, leader) {
		leader = centrals[0]
	}
	s.headline("kill -9 %s (the leading central agent dies)", leader)
	t0 = time.Now()
	s.kill(leader)
	centrals = slices.DeleteFunc(centrals, func(n string) bool { return n == leader })
	v, err = s.until(ctx, 15*time.Second, func(v view) bool {
		return v.settled(computes, centrals) && slices.Contains(centrals, v.leader)
	})
	if err != nil {
		return fmt.Errorf("nobody took over from %s: %w", leader, err)
	}
	s.say("-> %s leads now and polls %s's share too, %.1fs after the kill", v.leader, leader, time.Since(t0).Seconds())
	if err := s.frames(ctx, 2); err != nil {
		return err
	}
	s.leaderLog(ctx)

	s.headline("done")
	for _, c := range s.children {
		if c.kind == "central" {
			n, ok := countLines(filepath.Join(s.dir, c.name+".jsonl"))
			if ok {
				s.say("%s wrote %d poll records", c.name, n)
			}
		}
	}
	s.say("stopping the agents and removing %s", s.dir)
	return nil
}

// spawn starts one agent.
func (s *show) spawn(name, kind string, extra ...string) error {
	logPath := filepath.Join(s.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"--config=", "--url", s.url, "--mode", s.mode,
		"--heartbeat-interval", s.o.HeartbeatInterval.String(), "--member-ttl", s.o.MemberTTL.String(),
		"agent", kind, "--member", name, "--listen", "127.0.0.1:0"}
	cmd := exec.Command(s.o.Binary, append(args, extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Whatever a child leaves in the temp dir (a killed agent's plugin
	// socket directory) goes with the demo's directory.
	cmd.Env = append(os.Environ(), "TMPDIR="+filepath.Join(s.dir, "tmp"))
	cmd.SysProcAttr = childAttr()
	c := &child{name: name, kind: kind, cmd: cmd, log: logPath, done: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	s.children = append(s.children, c)
	s.say("started %-10s pid %d", name, cmd.Process.Pid)
	return nil
}

func (s *show) child(name string) *child {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (s *show) logOf(name string) string {
	if c := s.child(name); c != nil {
		return c.log
	}
	return ""
}

// kill kills one agent with SIGKILL, as a crash would: the agent only, not
// its plugin, which must notice its host is gone by itself.
func (s *show) kill(name string) {
	c := s.child(name)
	if c == nil {
		return
	}
	s.say("kill -9 %d (%s)", c.cmd.Process.Pid, name)
	s.mu.Lock()
	if s.killed == nil {
		s.killed = map[string]bool{}
	}
	s.killed[name] = true
	s.mu.Unlock()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// stopAll stops every child: SIGTERM to the agent (which leaves its groups
// and stops its plugin), then SIGKILL to its whole process group after a
// grace period; it returns when all have been waited for.
func (s *show) stopAll() {
	s.mu.Lock()
	children := slices.Clone(s.children)
	s.mu.Unlock()
	for _, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	grace := time.After(3 * time.Second)
	for _, c := range children {
		select {
		case <-c.done:
		case <-grace:
		}
	}
	for _, c := range children {
		// Whatever is left in its group (a plugin) goes too.
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// until prints a view every frame until ok holds (then prints that view
// and returns it), ctx ends or timeout passes.
func (s *show) until(ctx context.Context, timeout time.Duration, ok func(view) bool) (view, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(s.o.Frame / 4)
	defer tick.Stop()
	var last time.Time
	for {
		v, err := s.look(ctx)
		if err != nil && ctx.Err() == nil {
			return v, err
		}
		if err == nil && ok(v) {
			s.print(v)
			return v, nil
		}
		if err == nil && time.Since(last) >= s.o.Frame {
			s.print(v)
			last = time.Now()
		}
		if time.Now().After(deadline) {
			return v, fmt.Errorf("not within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-tick.C:
		}
	}
}

// frames prints n views, a frame apart.
func (s *show) frames(ctx context.Context, n int) error {
	for range n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.o.Frame):
		}
		v, err := s.look(ctx)
		if err != nil {
			return err
		}
		s.print(v)
	}
	return nil
}

// leaderLog shows the leader's duty: the split summary it logged last.
func (s *show) leaderLog(ctx context.Context) {
	l, err := s.obs.Leader(ctx, "central")
	if err != nil {
		return
	}
	if line := lastSplit(s.logOf(l)); line != "" {
		s.say("   the leader, %s, logged: %s", l, line)
	}
}

// lastSplit is the last split summary the agent logged as leader.
func lastSplit(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	last := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "split: ")
		if i < 0 {
			continue
		}
		msg := line[i:]
		if j := strings.Index(msg, "\t"); j >= 0 {
			msg = msg[:j]
		}
		last = msg
	}
	return last
}

func countLines(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	return strings.Count(string(b), "\n"), true
}
