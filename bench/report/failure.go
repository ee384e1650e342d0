package main

import (
	"bufio"
	"context"
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
func fdTrial(ctx context.Context, w *fdWatcher, sg *servicegroup.ServiceGroup, url, group, member string, sig syscall.Signal, ttl, hb time.Duration) (left, down time.Duration, err error) {
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
	return left, down, nil
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
	for _, b := range bs {
		fmt.Fprintf(os.Stderr, "bench: c. failure detection, %s\n", b.name)
		row, err := runFailure(ctx, b, trials, ttl, hb)
		if err != nil {
			t.add(b.name, "error: "+err.Error())
			rep.notes = append(rep.notes, fmt.Sprintf("c. %s: %v", b.name, err))
			continue
		}
		t.add(row...)
	}
	rep.emit(t)
	rep.notes = append(rep.notes, "c. Defaults: heartbeat 1 s, member TTL 5 s (servicegroup.DefaultMemberTTL): a dead member is detected within 5 s + one watch poll, under the 10 s target; this run measures the mechanism with a 1 s TTL.")
}

func runFailure(ctx context.Context, b *backend, trials int, ttl, hb time.Duration) ([]string, error) {
	url, err := b.url(ctx)
	if err != nil {
		return nil, err
	}
	s, err := openSession(ctx, b, b.open, url, "watcher", time.Second, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer s.close()
	const group = "fd"
	if err := s.sg.CreateGroup(ctx, group); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws, err := s.sg.Watch(wctx, group)
	if err != nil {
		return nil, err
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
					left, down, err := fdTrial(ctx, w, s.sg, url, group, fmt.Sprintf("m%d-%d", i, sig), sig, ttl, hb)
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
			return nil, firstErr
		}
	}
	bound := ttl + 500*time.Millisecond
	native := "no (polled)"
	term := "—"
	if b.native {
		native = "yes"
		term = verdict(tl.p99() <= 50*time.Millisecond)
	}
	return []string{b.name, native, ms(kl.median()), ms(kl.p99()), ms(kd.median()), ms(kd.p99()),
		verdict(kl.p99() <= bound && kd.p99() <= bound), ms(tl.median()), ms(tl.p99()), term}, nil
}
