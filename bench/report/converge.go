package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/partition"
)

// convergeBackends are the backends whose central agents are timed:
// those of the scale tables plus file (quick enough to run with them).
var convergeBackends = map[string]bool{"redis": true, "etcd": true, "zookeeper": true, "postgresql": true, "file": true}

// The central agents' settings: the defaults a `muster agent central`
// runs with (1 s heartbeat, servicegroup.DefaultMemberTTL, and the
// watch interval a 1 s heartbeat gives).
const (
	agentGroup = "central"
	agentCount = 100
	agentHB    = time.Second
	agentTTL   = servicegroup.DefaultMemberTTL
	agentWatch = agentHB / 2
)

// agent is one in-process central agent: its session and its Partitioner.
type agent struct {
	s *session
	p *partition.Partitioner
}

// openAgent opens member's session on url, joins the agents' group
// (creating it when create) and starts its Partitioner.
func openAgent(ctx context.Context, b *backend, url, member string, create bool) (*agent, error) {
	a, err := joinAgent(ctx, b, url, member, create)
	if err != nil {
		return nil, err
	}
	if err := a.follow(ctx); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

// joinAgent is openAgent without the Partitioner.
func joinAgent(ctx context.Context, b *backend, url, member string, create bool) (*agent, error) {
	s, err := openSession(ctx, b, b.open, url, member, agentHB, agentTTL)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", member, err)
	}
	join := s.sg.Join
	if create {
		join = s.sg.JoinOrCreate
	}
	if err := join(ctx, agentGroup, nil); err != nil {
		s.close()
		return nil, fmt.Errorf("join %s: %w", member, err)
	}
	return &agent{s: s}, nil
}

// follow starts a's Partitioner.
func (a *agent) follow(ctx context.Context) error {
	p, err := partition.New(ctx, a.s.sg, agentGroup)
	if err != nil {
		return fmt.Errorf("partitioner of %s: %w", a.s.sg.Member(), err)
	}
	a.p = p
	return nil
}

func (a *agent) close() {
	if a.p != nil {
		a.p.Close()
	}
	a.s.close()
}

// closeAgents closes agents a few at a time (each Close leaves the group).
func closeAgents(as []*agent) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, a := range as {
		if a == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			a.close()
			<-sem
		}()
	}
	wg.Wait()
}

// ringIs says whether p's ring holds exactly the members of want.
func ringIs(p *partition.Partitioner, want map[string]bool) bool {
	ns := p.Ring().Nodes()
	if len(ns) != len(want) {
		return false
	}
	for _, n := range ns {
		if !want[n.Name] {
			return false
		}
	}
	return true
}

// converged waits until every Partitioner of ps has exactly want on its
// ring and returns the moment the last one got there.
func converged(ctx context.Context, ps []*partition.Partitioner, want map[string]bool, limit time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	at := make([]time.Time, len(ps))
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				// Changed holds one coalesced signal: a change between the
				// check and the wait is not lost.
				if ringIs(p, want) {
					at[i] = time.Now()
					return
				}
				select {
				case <-p.Changed():
				case <-ctx.Done():
					errs[i] = fmt.Errorf("the partitioner of %s still had %d members on its ring (want %d) after %v", p.Member(), len(p.Ring().Nodes()), len(want), limit)
					return
				}
			}
		}()
	}
	wg.Wait()
	var last time.Time
	for i := range ps {
		if errs[i] != nil {
			return time.Time{}, errs[i]
		}
		if at[i].After(last) {
			last = at[i]
		}
	}
	return last, nil
}

func sectionConverge(ctx context.Context, rep *report, bs []*backend) {
	// A crash trial waits out the member TTL: quick mode runs fewer.
	trials, crashes := 10, 10
	if rep.o.quick {
		trials, crashes = 2, 1
	}
	t := &table{
		title: fmt.Sprintf("d. Scale: the partitioners of %d central agents converging after one leaves", agentCount),
		note: fmt.Sprintf("%d central agents on one group: %d in-process sessions in this process (heartbeat %v, member TTL %v, watch interval %v: a `muster agent central`'s defaults), each joined and running its own partition.Partitioner, plus the agent that leaves, a fresh one each trial. "+
			"Graceful: an in-process agent with its own Partitioner calls Leave; timed from the call. Crash: a member process (`report member`, in-process backend, the same heartbeat and TTL; it joins but runs no Partitioner) killed with SIGKILL and reaped at once, so it stops heartbeating without leaving; timed from the kill: where only the TTL tells of the death this holds the rest of the TTL (the last heartbeat was up to %v before the kill), where the backend sees the process go (file checks the writer's pid) it is one poll. "+
			"Converged = the last of the %d remaining Partitioners to have exactly the %d remaining members on its ring (each timed at the first moment it does; not re-checked that all still agree then). %d graceful and %d crash trials. "+
			"Issue 12 sets no target here; the model bound is what the design predicts: graceful within the watch latency (native watch: 50 ms, table c's; polled: the watch interval + one round trip, the median of 20 direct Members of the group in this run, + 5 ms of timer lateness); crash: TTL + the watch interval + one round trip + 5 ms; both plus the agents' share of this machine, since all of them rebuild their rings on its cores (one rebuild, the median of 31 measured here, × %d agents ÷ %d CPUs); an agent on its own host pays one rebuild. "+
			"p99 ÷ bound is a measure, not a verdict: the share is most of the bound and moves with this shared machine's load from run to run (one rebuild took 17–24 ms on file in two quick runs of one hour), so a met/MISSED there would flip on re-running.",
			agentCount, agentCount-1, agentHB, agentTTL, agentWatch, agentHB, agentCount-1, agentCount-1, trials, crashes, agentCount-1, runtime.NumCPU()),
		head: []string{"backend", "watch", "agents", "leave", "converge p50", "p99", "trials", "one agent's ring rebuild", "model bound", "p99 ÷ bound"},
	}
	for _, b := range bs {
		if !convergeBackends[b.name] {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: d. central agents converging, %s\n", b.name)
		t0 := time.Now()
		rows, err := runConverge(ctx, b, trials, crashes)
		fmt.Fprintf(os.Stderr, "bench: d. central agents, %s took %v\n", b.name, time.Since(t0).Round(time.Second))
		for _, r := range rows {
			t.add(r...)
		}
		if err != nil {
			t.add(b.name, "error: "+err.Error())
			rep.notes = append(rep.notes, fmt.Sprintf("d. central agents, %s: %v", b.name, err))
		}
	}
	rep.emit(t)
}

func runConverge(ctx context.Context, b *backend, trials, crashes int) ([][]string, error) {
	url, err := b.url(ctx)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	stay, err := openAgents(ctx, b, url, agentCount-1)
	defer closeAgents(stay)
	if err != nil {
		return nil, err
	}
	ps := make([]*partition.Partitioner, len(stay))
	want := map[string]bool{}
	for i, a := range stay {
		ps[i] = a.p
		want[a.s.sg.Member()] = true
	}
	// The agents' first rings are built as they start following: the
	// round trip and the rebuild are measured once that load is over.
	if _, err := converged(ctx, ps, want, 30*time.Second); err != nil {
		return nil, fmt.Errorf("agents starting: %w", err)
	}
	var rtt samples // what a poll does: the polled target's round trip
	for range 20 {
		d, err := timeIt(func() error { _, err := stay[0].s.sg.Members(ctx, agentGroup); return err })
		if err != nil {
			return nil, err
		}
		rtt = append(rtt, d)
	}
	// Every agent rebuilds its ring on a change; here all of them share
	// this machine's cores, which one agent on its own host would not.
	var rebuild samples
	ring := stay[0].p.Ring()
	leaver := ring.Nodes()[0].Name
	for range 31 {
		d, _ := timeIt(func() error { ring.Without(leaver); return nil })
		rebuild = append(rebuild, d)
	}
	share := rebuild.median() * time.Duration(len(stay)) / time.Duration(runtime.NumCPU())
	fmt.Fprintf(os.Stderr, "bench: d. %s: %d agents open (%v); Members round trip p50 %s ms, p99 %s ms; one ring rebuild %s ms\n", b.name, len(stay), time.Since(t0).Round(time.Millisecond), ms(rtt.median()), ms(rtt.p99()), ms(rebuild.median()))
	watch, graceLimit := "polled", agentWatch+rtt.median()+5*time.Millisecond
	if b.native {
		watch, graceLimit = "native", 50*time.Millisecond
	}
	crashLimit := agentTTL + agentWatch + rtt.median() + 5*time.Millisecond
	graceLimit += share
	crashLimit += share
	row := func(kind string, s samples, limit time.Duration) []string {
		return []string{b.name, watch, fmt.Sprint(agentCount), kind, ms(s.median()), ms(s.p99()), fmt.Sprint(len(s)), ms(rebuild.median()),
			ms(limit), ratio(s.p99(), limit)}
	}
	var rows [][]string
	grace, err := convergeTrials(ctx, b.name+" graceful", trials, ps, want, func(i int, with map[string]bool) (time.Time, func(), error) {
		return gracefulLeave(ctx, b, url, fmt.Sprintf("leaver-g%d", i), ps, with)
	})
	if err != nil {
		return nil, fmt.Errorf("graceful leave: %w", err)
	}
	rows = append(rows, row("graceful (Leave)", grace, graceLimit))
	crash, err := convergeTrials(ctx, b.name+" crash", crashes, ps, want, func(i int, with map[string]bool) (time.Time, func(), error) {
		return crashLeave(ctx, url, fmt.Sprintf("leaver-k%d", i), ps, with)
	})
	if err != nil {
		return rows, fmt.Errorf("crash: %w", err)
	}
	return append(rows, row("crash (SIGKILL)", crash, crashLimit)), nil
}

// openAgents opens n agents named agent-0.. on url, 16 at a time; the
// first creates the group.
func openAgents(ctx context.Context, b *backend, url string, n int) ([]*agent, error) {
	first, err := joinAgent(ctx, b, url, "agent-0", true)
	if err != nil {
		return nil, err
	}
	as := make([]*agent, n)
	as[0] = first
	// All join first, then all start following: Partitioners started
	// among the joins would each rebuild its ring at nearly every join
	// (99 x 99 rebuilds), which is start-up cost, not what is measured.
	each := func(from int, f func(i int) error) error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := from; i < n; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				errs[i] = f(i)
				<-sem
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	if err := each(1, func(i int) (err error) {
		as[i], err = joinAgent(ctx, b, url, fmt.Sprintf("agent-%d", i), false)
		return err
	}); err != nil {
		return as, err
	}
	return as, each(0, func(i int) error { return as[i].follow(ctx) })
}

// A leaveFunc opens a fresh agent, waits until it and the Partitioners agree
// on with (to which it adds the agent), then makes the agent go and
// returns when it did, and how to release what is left of it once the
// others have seen it go (so that cleaning up adds no load to what is
// timed).
type leaveFunc func(i int, with map[string]bool) (t0 time.Time, release func(), err error)

// convergeTrials runs trials of leave and returns the times from each
// leave until the Partitioners of ps have exactly want again.
func convergeTrials(ctx context.Context, label string, trials int, ps []*partition.Partitioner, want map[string]bool, leave leaveFunc) (samples, error) {
	var out samples
	for i := range trials {
		with := make(map[string]bool, len(want)+1)
		for m := range want {
			with[m] = true
		}
		t0, release, err := leave(i, with)
		if err != nil {
			return out, err
		}
		last, err := converged(ctx, ps, want, 30*time.Second)
		release()
		if err != nil {
			return out, err
		}
		out = append(out, last.Sub(t0))
		fmt.Fprintf(os.Stderr, "bench: d. %s, trial %d: converged in %s ms\n", label, i, ms(last.Sub(t0)))
	}
	return out, nil
}

// gracefulLeave is a leave by an in-process agent calling Leave.
func gracefulLeave(ctx context.Context, b *backend, url, member string, ps []*partition.Partitioner, with map[string]bool) (time.Time, func(), error) {
	a, err := openAgent(ctx, b, url, member, false)
	if err != nil {
		return time.Time{}, nil, err
	}
	with[member] = true
	if _, err := converged(ctx, append([]*partition.Partitioner{a.p}, ps...), with, 30*time.Second); err != nil {
		a.close()
		return time.Time{}, nil, fmt.Errorf("before %s left: %w", member, err)
	}
	a.p.Close()
	t0 := time.Now()
	if err := a.s.sg.Leave(ctx, agentGroup); err != nil {
		a.s.close()
		return time.Time{}, nil, fmt.Errorf("%s: leave: %w", member, err)
	}
	return t0, a.s.close, nil
}

// crashLeave is a leave by a member process killed with SIGKILL: its
// heartbeats stop and it never leaves, as when an agent crashes.
func crashLeave(ctx context.Context, url, member string, ps []*partition.Partitioner, with map[string]bool) (time.Time, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return time.Time{}, nil, err
	}
	cmd := exec.Command(exe, "member", "-url", url, "-group", agentGroup, "-member", member, "-hb", agentHB.String(), "-ttl", agentTTL.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return time.Time{}, nil, err
	}
	if err := cmd.Start(); err != nil {
		return time.Time{}, nil, fmt.Errorf("start member process %s: %w", member, err)
	}
	reap := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	if sc := bufio.NewScanner(out); !sc.Scan() || sc.Text() != "joined" {
		reap()
		return time.Time{}, nil, fmt.Errorf("member process %s did not join", member)
	}
	with[member] = true
	if _, err := converged(ctx, ps, with, 30*time.Second); err != nil {
		reap()
		return time.Time{}, nil, fmt.Errorf("before %s was killed: %w", member, err)
	}
	t0 := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		reap()
		return time.Time{}, nil, fmt.Errorf("kill %s: %w", member, err)
	}
	// Reaped at once, as init reaps a crashed agent: a zombie's pid
	// would still look alive to the file backend's process check.
	_ = cmd.Wait()
	return t0, func() {}, nil
}
