package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

// memberMain is the helper member process: `report member -url U -group G
// -member M`. It joins (in-process), prints "joined", and on SIGTERM leaves
// and exits.
func memberMain(args []string) int {
	fs := flag.NewFlagSet("member", flag.ExitOnError)
	url := fs.String("url", "", "backend URL")
	group := fs.String("group", "", "group")
	member := fs.String("member", "", "member id")
	hb := fs.Duration("hb", 250*time.Millisecond, "heartbeat interval")
	ttl := fs.Duration("ttl", time.Second, "member TTL")
	_ = fs.Parse(args)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	ctx := context.Background()
	sg, err := servicegroup.Open(ctx, servicegroup.Config{URL: *url, Member: *member, Mode: servicegroup.ModeInProcess,
		HeartbeatInterval: *hb, MemberTTL: *ttl, DialTimeout: 20 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "member:", err)
		return 1
	}
	if err := sg.JoinOrCreate(ctx, *group, nil); err != nil {
		fmt.Fprintln(os.Stderr, "member:", err)
		return 1
	}
	fmt.Println("joined")
	<-sig
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sg.Close(cctx); err != nil {
		fmt.Fprintln(os.Stderr, "member:", err)
		return 1
	}
	return 0
}

// fdWatcher follows a group and stamps each member's join and leave.
type fdWatcher struct {
	mu     sync.Mutex
	joined map[string]chan struct{}
	left   map[string]chan time.Time
}

func (w *fdWatcher) chans(m string) (chan struct{}, chan time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.joined[m] == nil {
		w.joined[m], w.left[m] = make(chan struct{}), make(chan time.Time, 1)
	}
	return w.joined[m], w.left[m]
}

func (w *fdWatcher) follow(ws *servicegroup.Watch) {
	for ev := range ws.Events() {
		j, l := w.chans(ev.Member)
		switch ev.Type {
		case servicegroup.MemberJoined:
			select {
			case <-j:
			default:
				close(j)
			}
		case servicegroup.MemberLeft:
			select {
			case l <- time.Now():
			default:
			}
		}
	}
}

// fdTrial starts a member process, waits until the watcher sees it, then
// kills it with sig and returns the time until the watcher's left event
// and until IsUp said down.
func fdTrial(ctx context.Context, w *fdWatcher, sg *servicegroup.ServiceGroup, vw *viewTimes, url, group, member string, sig syscall.Signal, ttl, hb time.Duration) (left, down time.Duration, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(exe, "member", "-url", url, "-group", group, "-member", member, "-hb", hb.String(), "-ttl", ttl.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "joined" {
		return 0, 0, fmt.Errorf("member %s did not join", member)
	}
	if err := vw.joinAndMark(ctx, member); err != nil {
		return 0, 0, err
	}
	j, l := w.chans(member)
	select {
	case <-j:
	case <-time.After(20 * time.Second):
		return 0, 0, fmt.Errorf("watcher never saw %s join", member)
	}
	time.Sleep(2 * hb) // a few heartbeats in
	t0 := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		return 0, 0, err
	}
	downc := make(chan time.Duration, 1)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	viewc := make(chan error, 1)
	go func() { viewc <- vw.gone(pctx, member, sig, t0) }()
	go func() {
		for pctx.Err() == nil {
			if up, err := sg.IsUp(pctx, group, member); err == nil && !up {
				downc <- time.Since(t0)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		downc <- -1
	}()
	select {
	case t := <-l:
		left = t.Sub(t0)
	case <-pctx.Done():
		return 0, 0, fmt.Errorf("no left event for %s within 30s", member)
	}
	down = <-downc
	if down < 0 {
		return left, 0, fmt.Errorf("IsUp never said %s down", member)
	}
	if err := <-viewc; err != nil {
		return 0, 0, err
	}
	return left, down, nil
}

// viewTimes times a View held by the harness (issue 11's freshness): from
// a member process's Join returning (its "joined" line), from a ForceDown
// set and cleared through another session (its own backend connection),
// and from a member's kill -9 or SIGTERM, to the view answering
// accordingly.
type viewTimes struct {
	v  *servicegroup.View
	op *servicegroup.ServiceGroup // the operator's session

	mu                            sync.Mutex
	join, mark, clear, kill, term samples
}

// until waits until the view's answer for member satisfies ok.
func (vt *viewTimes) until(ctx context.Context, member string, ok func(servicegroup.Member, error) bool) error {
	for {
		ch := vt.v.Changed()
		if ok(vt.v.Member(member)) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("the view never showed the change to %s", member)
		}
	}
}

func (vt *viewTimes) add(to *samples, d time.Duration) {
	vt.mu.Lock()
	*to = append(*to, d)
	vt.mu.Unlock()
}

func upIn(m servicegroup.Member, err error) bool     { return err == nil && !m.ForcedDown }
func markedIn(m servicegroup.Member, err error) bool { return err == nil && m.ForcedDown }
func goneFrom(_ servicegroup.Member, err error) bool {
	return errors.Is(err, servicegroup.ErrNotMember)
}

// joinAndMark times member's join (its Join has just returned), then a
// force-down and its clearing.
func (vt *viewTimes) joinAndMark(ctx context.Context, member string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := vt.until(ctx, member, upIn); err != nil {
		return err
	}
	vt.add(&vt.join, time.Since(t0))
	for _, down := range []bool{true, false} {
		if err := vt.op.ForceDown(ctx, fdGroup, member, down); err != nil {
			return err
		}
		t0 := time.Now()
		ok, to := markedIn, &vt.mark
		if !down {
			ok, to = upIn, &vt.clear
		}
		if err := vt.until(ctx, member, ok); err != nil {
			return err
		}
		vt.add(to, time.Since(t0))
	}
	return nil
}

// gone times member leaving the view after sig at t0.
func (vt *viewTimes) gone(ctx context.Context, member string, sig syscall.Signal, t0 time.Time) error {
	if err := vt.until(ctx, member, goneFrom); err != nil {
		return err
	}
	to := &vt.term
	if sig == syscall.SIGKILL {
		to = &vt.kill
	}
	vt.add(to, time.Since(t0))
	return nil
}

func sectionFailure(ctx context.Context, rep *report, bs []*backend) {
	const ttl, hb = time.Second, 250 * time.Millisecond
	trials := 10
	if rep.o.quick {
		trials = 3
	}
	t := &table{
		title: "c. Failure detection: a member process killed (kill -9) or stopped (SIGTERM)",
		note: fmt.Sprintf("Member: a helper process (`report member`, in-process backend) with member TTL %v, heartbeat %v; watcher and IsUp poller (every 5 ms) in the harness process, defaults otherwise (watch poll: half its heartbeat, 0.5 s). "+
			"%d trials each, up to 4 kill and 4 SIGTERM trials at a time. Targets: kill -9 seen within TTL + 0.5 s at p99 (watch and IsUp); SIGTERM seen by the watch within 50 ms at p99 on backends with native watch.", ttl, hb, trials),
		head: []string{"backend", "native watch", "kill -9 → left p50", "p99", "kill -9 → IsUp down p50", "p99", "≤ TTL+0.5 s", "SIGTERM → left p50", "p99", "≤ 50 ms (native)"},
	}
	vt := &table{
		title: "c2. View freshness: a change to a View in the harness reflecting it (issue 11)",
		note: fmt.Sprintf("The same trials: from a member process's Join returning (its \"joined\" line) to the harness's View listing it; from ForceDown set and cleared through a second harness session (its own connection) to the View showing it; from kill -9 and SIGTERM of the member process to the View dropping it. "+
			"Targets: native watch ≤ 50 ms at p99 for join, force-down and SIGTERM; polled ≤ the watch interval (%v) + one round trip (p99 of a direct Members of the group, measured in this run) + 5 ms of timer lateness; kill -9 ≤ TTL + 0.5 s.", fdWatchInterval),
		head: []string{"backend", "watch", "join p50", "p99", "force-down p50", "p99", "clear p50", "p99", "SIGTERM p50", "p99", "kill -9 p50", "p99", "target"},
	}
	for _, b := range bs {
		fmt.Fprintf(os.Stderr, "bench: c. failure detection, %s\n", b.name)
		row, vrow, err := runFailure(ctx, b, trials, ttl, hb)
		if err != nil {
			t.add(b.name, "error: "+err.Error())
			vt.add(b.name, "error: "+err.Error())
			rep.notes = append(rep.notes, fmt.Sprintf("c. %s: %v", b.name, err))
			continue
		}
		t.add(row...)
		vt.add(vrow...)
	}
	rep.emit(t)
	rep.emit(vt)
	rep.notes = append(rep.notes, "c. Defaults: heartbeat 1 s, member TTL 5 s (servicegroup.DefaultMemberTTL): a dead member is detected within 5 s + one watch poll, under the 10 s target; this run measures the mechanism with a 1 s TTL.")
}

// fdGroup is the failure trials' group; fdWatchInterval the harness's
// poll interval on backends without a native watch (its default for a
// 1 s heartbeat).
const (
	fdGroup         = "fd"
	fdWatchInterval = 500 * time.Millisecond
)

func runFailure(ctx context.Context, b *backend, trials int, ttl, hb time.Duration) (row, vrow []string, err error) {
	url, err := b.url(ctx)
	if err != nil {
		return nil, nil, err
	}
	s, err := openSession(ctx, b, b.open, url, "watcher", time.Second, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer s.close()
	op, err := openSession(ctx, b, b.open, url, "operator", time.Second, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer op.close()
	const group = fdGroup
	if err := s.sg.CreateGroup(ctx, group); err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws, err := s.sg.Watch(wctx, group)
	if err != nil {
		return nil, nil, err
	}
	view, err := s.sg.View(wctx, group)
	if err != nil {
		return nil, nil, err
	}
	defer view.Close()
	views := &viewTimes{v: view, op: op.sg}
	var rtt samples // a direct listing, what a poll does: the polled target's round trip
	for range 20 {
		t0 := time.Now()
		if _, err := s.sg.Members(ctx, group); err != nil {
			return nil, nil, err
		}
		rtt = append(rtt, time.Since(t0))
	}
	w := &fdWatcher{joined: map[string]chan struct{}{}, left: map[string]chan time.Time{}}
	go w.follow(ws)
	var kl, kd, tl samples
	var mu sync.Mutex
	var firstErr error
	// Trials run a wave at a time: each its own member process, killed at
	// once; the watcher tells them apart by member id.
	const wave = 4
	for start := 0; start < trials; start += wave {
		var wg sync.WaitGroup
		for i := start; i < min(start+wave, trials); i++ {
			for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					left, down, err := fdTrial(ctx, w, s.sg, views, url, group, fmt.Sprintf("m%d-%d", i, sig), sig, ttl, hb)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						if firstErr == nil {
							firstErr = err
						}
						return
					}
					if sig == syscall.SIGKILL {
						kl, kd = append(kl, left), append(kd, down)
					} else {
						tl = append(tl, left)
					}
				}()
			}
		}
		wg.Wait()
		if firstErr != nil {
			return nil, nil, firstErr
		}
	}
	bound := ttl + 500*time.Millisecond
	native := "no (polled)"
	term := "—"
	if b.native {
		native = "yes"
		term = verdict(tl.p99() <= 50*time.Millisecond)
	}
	row = []string{b.name, native, ms(kl.median()), ms(kl.p99()), ms(kd.median()), ms(kd.p99()),
		verdict(kl.p99() <= bound && kd.p99() <= bound), ms(tl.median()), ms(tl.p99()), term}

	// Polled: the interval, the poll's round trip, and 5 ms for the
	// ticker's and the scheduler's lateness on a loaded machine.
	watch, limit := "polled", fdWatchInterval+rtt.p99()+5*time.Millisecond
	if b.native {
		watch, limit = "native", 50*time.Millisecond
	}
	v := views
	ok := v.join.p99() <= limit && v.mark.p99() <= limit && v.clear.p99() <= limit && v.term.p99() <= limit && v.kill.p99() <= bound
	vrow = []string{b.name, watch, ms(v.join.median()), ms(v.join.p99()), ms(v.mark.median()), ms(v.mark.p99()),
		ms(v.clear.median()), ms(v.clear.p99()), ms(v.term.median()), ms(v.term.p99()), ms(v.kill.median()), ms(v.kill.p99()),
		fmt.Sprintf("%s (≤ %s ms; kill -9 ≤ %s ms)", verdict(ok), ms(limit), ms(bound))}
	return row, vrow, nil
}
