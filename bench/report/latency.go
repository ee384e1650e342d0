package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// variant is one way of running muster: in-process or through the plugin.
type variant struct {
	name string
	a, b *session // b takes the lock over from a
	view *servicegroup.View
}

// latOp is one operation of table a. Each function times itself (setup
// steps such as the Join before a timed Leave are not counted).
type latOp struct {
	key, name string
	muster    func(ctx context.Context, v *variant) (time.Duration, error)
	raw       func(ctx context.Context, r raw) (time.Duration, error)
}

var capsA = servicegroup.Capabilities{"zone": "a"}

func latOps() []latOp {
	plain := func(f func(ctx context.Context, v *variant) error) func(ctx context.Context, v *variant) (time.Duration, error) {
		return func(ctx context.Context, v *variant) (time.Duration, error) {
			return timeIt(func() error { return f(ctx, v) })
		}
	}
	rawf := func(f func(r raw, ctx context.Context) error) func(ctx context.Context, r raw) (time.Duration, error) {
		return func(ctx context.Context, r raw) (time.Duration, error) {
			return timeIt(func() error { return f(r, ctx) })
		}
	}
	getAll := func(g string, n int) func(ctx context.Context, v *variant) error {
		return func(ctx context.Context, v *variant) error {
			ms, err := v.a.sg.GetAll(ctx, g)
			if err == nil && len(ms) != n {
				err = fmt.Errorf("%d members in %s, want %d", len(ms), g, n)
			}
			return err
		}
	}
	return []latOp{
		{"join", "Join", func(ctx context.Context, v *variant) (time.Duration, error) {
			d, err := timeIt(func() error { return v.a.sg.Join(ctx, "lat", capsA) })
			if err != nil {
				return 0, err
			}
			return d, v.a.sg.Leave(ctx, "lat")
		}, func(ctx context.Context, r raw) (time.Duration, error) {
			d, err := timeIt(func() error { return r.join(ctx) })
			if err != nil {
				return 0, err
			}
			return d, r.leave(ctx)
		}},
		{"leave", "Leave", func(ctx context.Context, v *variant) (time.Duration, error) {
			if err := v.a.sg.Join(ctx, "lat", capsA); err != nil {
				return 0, err
			}
			return timeIt(func() error { return v.a.sg.Leave(ctx, "lat") })
		}, func(ctx context.Context, r raw) (time.Duration, error) {
			if err := r.join(ctx); err != nil {
				return 0, err
			}
			return timeIt(func() error { return r.leave(ctx) })
		}},
		{"isup", "IsUp (direct)", plain(func(ctx context.Context, v *variant) error {
			up, err := v.a.sg.IsUp(ctx, "g200", "m0")
			if err == nil && !up {
				err = errors.New("m0 is down")
			}
			return err
		}), rawf(raw.isUp)},
		{"isupview", "IsUp (View)", plain(func(ctx context.Context, v *variant) error {
			if v.view == nil {
				return errNoView
			}
			up, err := v.view.IsUp("m0")
			if err == nil && !up {
				err = errors.New("m0 is down")
			}
			return err
		}), nil},
		{"getall1", "GetAll (1 member)", plain(getAll("g1", 1)), rawf(func(r raw, ctx context.Context) error { return r.list(ctx, 1) })},
		{"getall200", "GetAll (200 members)", plain(getAll("g200", 200)), rawf(func(r raw, ctx context.Context) error { return r.list(ctx, 200) })},
		{"setcaps", "SetCapabilities", plain(func(ctx context.Context, v *variant) error {
			return v.a.sg.SetCapabilities(ctx, "caps", servicegroup.Capabilities{"t": time.Now().UnixNano()})
		}), rawf(raw.setCaps)},
		{"heartbeat", "Heartbeat", plain(func(ctx context.Context, v *variant) error { return v.a.heartbeat(ctx) }), rawf(raw.heartbeat)},
		{"lock", "Lock acquire+release", plain(func(ctx context.Context, v *variant) error {
			l := v.a.sg.Lock("lat-" + v.name)
			if _, err := l.TryAcquire(ctx); err != nil {
				return err
			}
			return l.Release(ctx)
		}), rawf(raw.lock)},
		{"handover", "Lock hand-over (2 sessions)", handover, nil},
	}
}

var errNoView = errors.New("n/a (no View yet)")

// handover: a holds the lock, b waits in Acquire; the time from a's
// Release call to b's Acquire returning.
func handover(ctx context.Context, v *variant) (time.Duration, error) {
	name := "ho-" + v.name
	la, lb := v.a.sg.Lock(name), v.b.sg.Lock(name)
	if _, err := la.TryAcquire(ctx); err != nil {
		return 0, err
	}
	got := make(chan time.Time, 1)
	errc := make(chan error, 1)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() {
		if _, err := lb.Acquire(wctx); err != nil {
			errc <- err
			return
		}
		got <- time.Now()
	}()
	time.Sleep(5 * time.Millisecond) // b is waiting
	t0 := time.Now()
	if err := la.Release(ctx); err != nil {
		return 0, err
	}
	select {
	case t := <-got:
		return t.Sub(t0), lb.Release(ctx)
	case err := <-errc:
		return 0, err
	}
}

// latResult is one backend's measurements.
type latResult struct {
	samples map[string]map[string]samples // op -> variant -> samples
	rts     map[string]string             // op -> muster round trips
	rawRTs  map[string]string
	errs    map[string]string // op/variant -> first error
}

func runLatency(ctx context.Context, b *backend, pluginDir string, n int) (*latResult, error) {
	url, err := b.url(ctx)
	if err != nil {
		return nil, err
	}
	admin, err := b.open(ctx, drvOpts(url, "admin", longTTL(b)))
	if err != nil {
		return nil, err
	}
	defer admin.Close(context.Background())
	for _, g := range []string{"g1", "g200", "lat", "caps"} {
		if err := admin.CreateGroup(ctx, g); err != nil {
			return nil, err
		}
	}
	var pop population
	defer pop.close()
	pop.keepAlive(20 * time.Second)
	if err := pop.add(ctx, b, url, "m", 200, longTTL(b), func(i int) []string {
		if i == 0 {
			return []string{"g1", "g200"}
		}
		return []string{"g200"}
	}); err != nil {
		return nil, fmt.Errorf("populate: %w", err)
	}
	var variants []*variant
	defer func() {
		for _, v := range variants {
			if v.view != nil {
				v.view.Close()
			}
			for _, s := range []*session{v.a, v.b} {
				if s != nil {
					s.close()
				}
			}
		}
	}()
	plug := host.Config{Dir: pluginDir}.Factory(b.name)
	for _, vv := range []struct {
		name string
		open bool
	}{{"in-process", false}, {"plugin", true}} {
		f := b.open
		if vv.open {
			f = plug
		}
		v := &variant{name: vv.name}
		variants = append(variants, v)
		if v.a, err = openSession(ctx, b, f, url, vv.name+"-a", time.Second, 10*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w", vv.name, err)
		}
		if v.b, err = openSession(ctx, b, f, url, vv.name+"-b", time.Second, 10*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w", vv.name, err)
		}
		if err := v.a.sg.Join(ctx, "caps", capsA); err != nil {
			return nil, err
		}
		if view, err := v.a.sg.View(ctx, "g200"); err == nil {
			if err := view.Synced(ctx); err == nil {
				v.view = view
			} else {
				view.Close()
			}
		}
	}
	r, err := newRaw(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("raw client: %w", err)
	}
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return nil, fmt.Errorf("raw setup: %w", err)
	}

	res := &latResult{samples: map[string]map[string]samples{}, rts: map[string]string{}, rawRTs: map[string]string{}, errs: map[string]string{}}
	cnt := newCounter(b)
	for _, op := range latOps() {
		res.samples[op.key] = map[string]samples{}
		type runner struct {
			name string
			f    func() (time.Duration, error)
		}
		var rs []runner
		for _, v := range variants {
			rs = append(rs, runner{v.name, func() (time.Duration, error) { return op.muster(ctx, v) }})
		}
		if op.raw != nil {
			rs = append(rs, runner{"raw", func() (time.Duration, error) { return op.raw(ctx, r) }})
		}
		failed := map[string]bool{}
		take := func(from, to int) {
			for i := from; i < to; i++ {
				for j := range rs {
					ru := rs[(j+max(i, 0))%len(rs)] // rotate the order: no side always goes first
					if failed[ru.name] {
						continue
					}
					d, err := ru.f()
					if err != nil {
						failed[ru.name] = true
						res.errs[op.key+"/"+ru.name] = err.Error()
						continue
					}
					if i >= 0 {
						res.samples[op.key][ru.name] = append(res.samples[op.key][ru.name], d)
					}
				}
			}
		}
		const warm = 3
		take(-warm, n)
		if s := res.samples[op.key]; nearTarget(s["in-process"], s["raw"], latTarget) {
			take(n, nearN(n))
		}
		if cnt != nil && op.key != "isupview" && op.key != "handover" {
			const k = 20
			v := variants[0]
			resume := pop.quiet()
			switch op.key {
			case "join":
				res.rts[op.key] = cnt.around(ctx, k, nil, func() error { return v.a.sg.Join(ctx, "lat", capsA) }, func() error { return v.a.sg.Leave(ctx, "lat") })
				res.rawRTs[op.key] = cnt.around(ctx, k, nil, func() error { return r.join(ctx) }, func() error { return r.leave(ctx) })
			case "leave":
				res.rts[op.key] = cnt.around(ctx, k, func() error { return v.a.sg.Join(ctx, "lat", capsA) }, func() error { return v.a.sg.Leave(ctx, "lat") }, nil)
				res.rawRTs[op.key] = cnt.around(ctx, k, func() error { return r.join(ctx) }, func() error { return r.leave(ctx) }, nil)
			default:
				res.rts[op.key] = cnt.perOp(ctx, k, func() error { _, err := op.muster(ctx, v); return err })
				if op.raw != nil {
					res.rawRTs[op.key] = cnt.perOp(ctx, k, func() error { _, err := op.raw(ctx, r); return err })
				}
			}
			resume()
		}
	}
	if cnt == nil {
		for k, v := range rawRTs[b.name] {
			res.rawRTs[k] = v
		}
	}
	return res, nil
}

func drvOpts(url, member string, ttl time.Duration) driver.Options {
	return driver.Options{URL: url, Member: member, TTL: ttl, DialTimeout: 30 * time.Second}
}
