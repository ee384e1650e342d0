package drivertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// SafetyConfig bounds one randomized safety run.
type SafetyConfig struct {
	// Sessions is how many members compete (default 4).
	Sessions int
	// Duration is how long they compete (default 3 s).
	Duration time.Duration
	// Kill, when set, kills the process serving d (a plugin) as a fault.
	Kill func(d driver.Driver) error
	// Seed makes a run repeatable; 0 picks one (and logs it).
	Seed uint64
}

// SafetyDuration is how long a safety run lasts by default: 3 s, or
// $MUSTER_SAFETY_DURATION (a Go duration; `make soak-safety` sets it).
func SafetyDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("MUSTER_SAFETY_DURATION")); err == nil && d > 0 {
		return d
	}
	return 3 * time.Second
}

// SafetyReport is what a run saw.
type SafetyReport struct {
	Seed                           uint64
	Grants, Losses, Faults, Leaked int
	Violations                     []string
}

// Safety is a bounded, Jepsen-style test of the core's promise on b: several
// members compete for one lock and one election with random caller
// deadlines, while their heartbeats are cut off long enough for the backend
// to expire them, and (with Kill) their plugins are killed. Every grant is
// checked against the library's own account of every other holder: never
// two holders at once (Held), Lost already closed for a holder the backend
// has replaced, fencing tokens strictly increasing per name; once the run
// settles, a lock the backend says is held must be held by some Lock that
// knows it. It fails t on any violation and returns the report.
func Safety(t *testing.T, b Backend, cfg SafetyConfig) SafetyReport {
	if cfg.Sessions == 0 {
		cfg.Sessions = 4
	}
	if cfg.Duration == 0 {
		cfg.Duration = SafetyDuration()
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	t.Logf("safety: seed %d, %d sessions, %v", cfg.Seed, cfg.Sessions, cfg.Duration)
	s := &suite{b: b, unsupported: map[Feature]bool{}}
	u := b.URL(t)
	h := &history{tokens: map[string]servicegroup.Token{}}
	workers := make([]*safetyWorker, cfg.Sessions)
	for i := range workers {
		ctrl := s.control(t)
		// A TTL long enough that the loss margin (TTL/10) dwarfs timer
		// latency on a loaded machine; still several expiries per run.
		sg := s.openWith(t, u, fmt.Sprintf("w%d", i), ctrl.Open, func(c *servicegroup.Config) {
			c.HeartbeatInterval = 100 * time.Millisecond
			c.MemberTTL = time.Second
		})
		workers[i] = &safetyWorker{sg: sg, ctrl: ctrl, h: h,
			rng:  rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
			lock: sg.Lock("safety"), kill: cfg.Kill}
		h.workers = append(h.workers, workers[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	wg.Wait()
	// Settle: everyone reachable again, then no lock the backend holds may
	// be unknown to every Lock.
	for _, w := range workers {
		w.ctrl.set(live)
	}
	time.Sleep(2 * time.Second) // > TTL: abandoned holdings expire or are undone
	check := s.raw(t, u, "safety-check", longTTL)
	for _, name := range []string{"safety", driver.ElectionLock("safety")} {
		eventually(t, soon, func() error {
			c, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			hd, err := check.LockHolder(c, name)
			m, tok := hd.Member, hd.Token
			if errors.Is(err, driver.ErrNotLocked) {
				return nil
			}
			if err != nil {
				return err
			}
			for _, w := range workers {
				if w.holds(name, tok) {
					return nil
				}
			}
			return fmt.Errorf("%s holds %q with token %d, and no Lock knows it", m, name, tok)
		})
	}
	for _, w := range workers {
		w.releaseAll()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	rep := SafetyReport{Seed: cfg.Seed, Grants: h.grants, Losses: h.losses, Faults: h.faults, Violations: h.violations}
	t.Logf("safety: %d grants, %d losses, %d faults, %d violations", rep.Grants, rep.Losses, rep.Faults, len(rep.Violations))
	for _, v := range rep.Violations {
		t.Errorf("safety violation: %s", v)
	}
	if rep.Grants == 0 {
		t.Errorf("safety: no grant in %v: the run tested nothing", cfg.Duration)
	}
	return rep
}

// history is every grant, checked as it happens.
type history struct {
	mu         sync.Mutex
	workers    []*safetyWorker
	tokens     map[string]servicegroup.Token
	grants     int
	losses     int
	faults     int
	violations []string
}

// granted checks a grant of name with tok to w against everyone else's
// account at this moment.
func (h *history) granted(w *safetyWorker, name string, tok servicegroup.Token) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.grants++
	if prev := h.tokens[name]; tok <= prev {
		h.violations = append(h.violations, fmt.Sprintf("%q granted to %s with token %d after token %d", name, w.sg.Member(), tok, prev))
	}
	h.tokens[name] = max(h.tokens[name], tok)
	for _, o := range h.workers {
		if o == w {
			continue
		}
		if held, otok, why := o.believes(name); held {
			h.violations = append(h.violations, fmt.Sprintf("%q granted to %s (token %d) while %s still holds it by its own account (token %d: %s)",
				name, w.sg.Member(), tok, o.sg.Member(), otok, why))
		}
	}
}

type safetyWorker struct {
	sg   *servicegroup.ServiceGroup
	ctrl *controlled
	h    *history
	rng  *rand.Rand
	kill func(driver.Driver) error

	mu   sync.Mutex
	lock *servicegroup.Lock
	lead *servicegroup.Leadership
	// open is each holding not yet released: its token and Lost, and
	// whether its Release is under way (then only Held counts: the backend
	// may free it any moment now).
	open map[string]*holding
}

type holding struct {
	tok       servicegroup.Token
	lost      <-chan struct{}
	releasing bool
}

// believes reports whether w still believes it holds name, and with which
// token: Held says so, or Lost has not fired for a holding it has not
// started to release.
func (w *safetyWorker) believes(name string) (bool, servicegroup.Token, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o, ok := w.open[name]
	if !ok {
		return false, 0, ""
	}
	if name == "safety" && w.lock.Held() {
		return true, o.tok, "Held is true"
	}
	if !o.releasing && !closed(o.lost) {
		return true, o.tok, "Lost has not fired"
	}
	return false, 0, ""
}

func (w *safetyWorker) releasing(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if o, ok := w.open[name]; ok {
		o.releasing = true
	}
}

func (w *safetyWorker) holds(name string, tok servicegroup.Token) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	o, ok := w.open[name]
	return ok && o.tok == tok && !closed(o.lost)
}

func (w *safetyWorker) record(name string, tok servicegroup.Token, lost <-chan struct{}) {
	w.h.granted(w, name, tok)
	w.mu.Lock()
	if w.open == nil {
		w.open = map[string]*holding{}
	}
	w.open[name] = &holding{tok: tok, lost: lost}
	w.mu.Unlock()
}

func (w *safetyWorker) forget(name string) {
	w.mu.Lock()
	delete(w.open, name)
	w.mu.Unlock()
}

func (w *safetyWorker) deadline() time.Duration {
	// Mostly short enough to cut calls off mid-flight.
	return time.Duration(w.rng.IntN(3000)+50) * time.Microsecond * time.Duration(1+w.rng.IntN(40))
}

func (w *safetyWorker) run(ctx context.Context) {
	for ctx.Err() == nil {
		switch r := w.rng.IntN(100); {
		case r < 45:
			w.tryLock(ctx)
		case r < 80:
			w.campaign(ctx)
		case r < 90:
			w.fault(ctx)
		default:
			time.Sleep(time.Duration(w.rng.IntN(20)) * time.Millisecond)
		}
	}
}

func (w *safetyWorker) tryLock(ctx context.Context) {
	c, cancel := context.WithTimeout(ctx, w.deadline())
	tok, err := w.lock.Acquire(c)
	cancel()
	if err != nil {
		return
	}
	w.record("safety", tok, w.lock.Lost())
	w.hold(ctx, w.lock.Lost())
	w.releasing("safety")
	c, cancel = context.WithTimeout(context.Background(), w.deadline())
	err = w.lock.Release(c)
	cancel()
	if err != nil && !errors.Is(err, servicegroup.ErrNotLocked) {
		// Still held: release it for real before going on.
		c, cancel = context.WithTimeout(context.Background(), soon)
		_ = w.lock.Release(c)
		cancel()
	}
	w.forget("safety")
}

func (w *safetyWorker) campaign(ctx context.Context) {
	c, cancel := context.WithTimeout(ctx, w.deadline())
	lead, err := w.sg.Campaign(c, "safety")
	cancel()
	if err != nil {
		return
	}
	name := driver.ElectionLock("safety")
	w.record(name, lead.Token(), lead.Lost())
	w.hold(ctx, lead.Lost())
	w.releasing(name)
	c, cancel = context.WithTimeout(context.Background(), soon)
	_ = lead.Resign(c)
	cancel()
	w.forget(name)
}

// hold keeps a holding for a while, noting if it is lost meanwhile.
func (w *safetyWorker) hold(ctx context.Context, lost <-chan struct{}) {
	if w.rng.IntN(3) == 0 {
		// Cut off while holding, often past the TTL: others take over.
		w.h.mu.Lock()
		w.h.faults++
		w.h.mu.Unlock()
		w.ctrl.set(partitioned)
		defer w.ctrl.set(live)
		select {
		case <-lost:
			w.h.mu.Lock()
			w.h.losses++
			w.h.mu.Unlock()
		case <-time.After(time.Duration(w.rng.IntN(1600)) * time.Millisecond):
		case <-ctx.Done():
		}
		return
	}
	select {
	case <-lost:
		w.h.mu.Lock()
		w.h.losses++
		w.h.mu.Unlock()
	case <-time.After(time.Duration(w.rng.IntN(60)) * time.Millisecond):
	case <-ctx.Done():
	}
}

// fault cuts this member off from the backend for a while (sometimes past
// its TTL, so the backend expires it), or kills its plugin.
func (w *safetyWorker) fault(ctx context.Context) {
	w.h.mu.Lock()
	w.h.faults++
	w.h.mu.Unlock()
	if w.kill != nil && w.rng.IntN(3) == 0 {
		if n := w.ctrl.sessions(); n > 0 {
			_ = w.kill(w.ctrl.session(n - 1))
		}
		return
	}
	w.ctrl.set(partitioned)
	select {
	case <-time.After(time.Duration(w.rng.IntN(1600)) * time.Millisecond):
	case <-ctx.Done():
	}
	w.ctrl.set(live)
}

func (w *safetyWorker) releaseAll() {
	c, cancel := context.WithTimeout(context.Background(), soon)
	defer cancel()
	if w.lock.Held() {
		_ = w.lock.Release(c)
	}
}
