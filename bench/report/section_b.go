package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/musterhq/muster/plugins/host"
)

// toozTarget is table b's: muster at least 3× tooz.
const toozTarget = 3

func sectionTooz(ctx context.Context, rep *report, bs []*backend, n int) {
	rounds, secs := 6, 500*time.Millisecond
	if rep.o.quick {
		rounds, secs = 4, 150*time.Millisecond
	}
	t := &table{
		title: "b. muster against OpenStack tooz (same server, same workload, interleaved)",
		note: fmt.Sprintf("%d samples per cell (%d where tooz ÷ muster comes within %v× of 3: the verdict turns on the noise there) in batches of 10, alternating muster in-process, muster plugin, tooz (one Python process, Debian's tooz 3.1) and the raw client of table a doing by hand the round trips muster's operation needs. "+
			"get_members reads the same 200-member group from both sides where the layouts are shared (redis, memcached, etcd, zookeeper); file: each its own group of 200. "+
			"Throughput: N clients (sessions / tooz coordinators in threads), each taking and releasing its own lock, in %d rounds (%d near 3×) of %v alternating muster and tooz; the rate shown is the median round's. Target: muster ≤ 1/3 of tooz's median and ≥ 3× its throughput. "+
			"tooz ÷ raw is the most any client doing those round trips reaches on this server: where it is under 3, the target is out of reach without dropping round trips muster's semantics need (a liveness write, a fencing token, a checked owner).", n, nearN(n), nearBand, rounds, nearN(rounds), secs),
		head: []string{"backend", "operation", "muster p50", "muster p99", "plugin p50", "tooz p50", "tooz p99", "raw p50", "tooz ÷ muster", "tooz ÷ raw", "target ≥ 3×"},
	}
	for _, b := range bs {
		fmt.Fprintf(os.Stderr, "bench: b. tooz, %s\n", b.name)
		if err := runTooz(ctx, rep, t, b, n, rounds, secs); err != nil {
			t.add(b.name, "error: "+err.Error())
			rep.notes = append(rep.notes, fmt.Sprintf("b. %s: %v", b.name, err))
		}
	}
	rep.emit(t)
}

func runTooz(ctx context.Context, rep *report, t *table, b *backend, n, rounds int, secs time.Duration) error {
	ns := "bt" + rnd()
	murl, err := b.toozCompatURL(ctx, ns)
	if err != nil {
		return err
	}
	g200, mj, tj := "tg"+ns, "mj"+ns, "tj"+ns
	var pop population
	defer pop.close()
	admin, err := b.open(ctx, drvOpts(murl, "admin-"+ns, longTTL(b)))
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	member := b.toozMembership()
	if member {
		for _, g := range []string{g200, mj} {
			if err := admin.CreateGroup(ctx, g); err != nil {
				return err
			}
		}
		pop.keepAlive(20 * time.Second)
		if err := pop.add(ctx, b, murl, "p"+ns+"-", 200, longTTL(b), func(int) []string { return []string{g200} }); err != nil {
			return fmt.Errorf("populate: %w", err)
		}
	}
	r, err := newRaw(ctx, b)
	if err != nil {
		return fmt.Errorf("raw client: %w", err)
	}
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return fmt.Errorf("raw setup: %w", err)
	}
	tz, err := startTooz(b.tmp, b.toozURL(ns), "tz-"+ns)
	if err != nil {
		return err
	}
	defer tz.close()
	if member {
		if _, err := tz.call(map[string]any{"op": "create", "group": tj}); err != nil {
			return err
		}
		if b.name == "file" {
			if _, err := tz.call(map[string]any{"op": "create", "group": g200}); err != nil {
				return err
			}
			if _, err := tz.call(map[string]any{"op": "populate", "group": g200, "n": 200}); err != nil {
				return err
			}
		}
	}
	mu, err := openSession(ctx, b, b.open, murl, "mu-"+ns, time.Second, 10*time.Second)
	if err != nil {
		return err
	}
	defer mu.close()
	pl, err := openSession(ctx, b, host.Config{Dir: rep.o.pluginDir}.Factory(b.name), murl, "pl-"+ns, time.Second, 10*time.Second)
	if err != nil {
		return err
	}
	defer pl.close()

	type op struct {
		name   string
		muster func(s *session) error
		tooz   map[string]any
		raw    func() error // timed; join's untimed leave is the caller's
	}
	var ops []op
	if member {
		ops = append(ops,
			op{"join", nil, map[string]any{"op": "join", "group": tj}, func() error { return r.join(ctx) }},
			op{"get_members (200)", func(s *session) error {
				ms, err := s.sg.GetAll(ctx, g200)
				if err == nil && len(ms) != 200 {
					err = fmt.Errorf("%d members, want 200", len(ms))
				}
				return err
			}, map[string]any{"op": "members", "group": g200, "want": 200}, func() error { return r.list(ctx, 200) }},
			op{"heartbeat", func(s *session) error { return s.heartbeat(ctx) }, map[string]any{"op": "heartbeat"}, func() error { return r.heartbeat(ctx) }})
	}
	ops = append(ops, op{"lock acquire+release", nil, map[string]any{"op": "lock", "name": "tl" + ns}, func() error { return r.lock(ctx) }})
	const batch = 10
	for _, o := range ops {
		var ms, ps, ts, rs samples
		var merr, perr, terr, rerr error
		take := func(from, to int) {
			for done := from; done < to; done += batch {
				k := min(batch, to-done)
				for side := range 4 {
					switch (side + done/batch) % 4 {
					case 0:
						if merr == nil {
							var s samples
							s, merr = musterBatch(ctx, mu, o.name, o.muster, mj, ns, k)
							ms = append(ms, s...)
						}
					case 1:
						if perr == nil {
							var s samples
							s, perr = musterBatch(ctx, pl, o.name, o.muster, mj, ns, k)
							ps = append(ps, s...)
						}
					case 2:
						if terr == nil {
							req := map[string]any{"n": k}
							for kk, v := range o.tooz {
								req[kk] = v
							}
							var s samples
							s, terr = tz.timed(req)
							ts = append(ts, s...)
						}
					case 3:
						if rerr == nil {
							var s samples
							var undo func() error
							if o.name == "join" {
								undo = func() error { return r.leave(ctx) }
							}
							s, rerr = rawBatch(o.raw, undo, k)
							rs = append(rs, s...)
						}
					}
				}
			}
		}
		take(0, n)
		if nearTarget(ts, ms, toozTarget) {
			take(n, nearN(n))
		}
		for _, e := range []error{merr, perr, terr, rerr} {
			if e != nil {
				rep.notes = append(rep.notes, fmt.Sprintf("b. %s %s: %v", b.name, o.name, e))
			}
		}
		verd := "—"
		if len(ms) > 0 && len(ts) > 0 {
			verd = verdict(toozTarget*ms.median() <= ts.median())
		}
		t.add(b.name, o.name, cellOr(ms, merr, ms.median), cellOr(ms, merr, ms.p99), cellOr(ps, perr, ps.median),
			cellOr(ts, terr, ts.median), cellOr(ts, terr, ts.p99), cellOr(rs, rerr, rs.median),
			ratio(ts.median(), ms.median()), ratio(ts.median(), rs.median()), verd)
		if b.name == "file" && o.name == "lock acquire+release" && len(ms) > 0 && len(ts) > 0 {
			rep.target("file lock in-process within 4× tooz's (issue 12 §3)",
				fmt.Sprintf("muster %s ms, tooz %s ms: %s", ms_(ms.median()), ms_(ts.median()), ratio(ms.median(), ts.median())),
				ms.median() <= 4*ts.median())
		}
	}
	// Throughput, 1 and 8 clients: rounds alternating muster and tooz,
	// each round's rate a sample (as the time per operation).
	for _, c := range []int{1, 8} {
		var ss []*session
		for i := range c {
			s, err := openSession(ctx, b, b.open, murl, fmt.Sprintf("th%d-%s-%d", c, ns, i), time.Second, 10*time.Second)
			if err != nil {
				return err
			}
			defer s.close()
			ss = append(ss, s)
		}
		var mper, tper samples
		var merr, terr error
		run := func(from, to int) {
			for r := from; r < to; r++ {
				for side := range 2 {
					if (side+r)%2 == 0 {
						if merr == nil {
							var ops float64
							ops, merr = musterThroughput(ctx, ss, fmt.Sprintf("th%d%s", c, ns), secs)
							mper = appendRate(mper, ops)
						}
					} else if terr == nil {
						var res toozResp
						res, terr = tz.call(map[string]any{"op": "throughput", "name": fmt.Sprintf("tt%d%s", c, ns), "clients": c, "seconds": secs.Seconds()})
						if terr == nil && res.Seconds > 0 {
							tper = appendRate(tper, float64(res.Ops)/res.Seconds)
						}
					}
				}
			}
		}
		run(0, rounds)
		if nearTarget(tper, mper, toozTarget) {
			run(rounds, nearN(rounds))
		}
		for _, e := range []error{merr, terr} {
			if e != nil {
				rep.notes = append(rep.notes, fmt.Sprintf("b. %s throughput %d: %v", b.name, c, e))
			}
		}
		verd, rat := "—", "—"
		if len(mper) > 0 && len(tper) > 0 {
			// The median rounds' rates: tooz's time per operation ÷ muster's.
			r := float64(tper.median()) / float64(mper.median())
			verd = verdict(r >= toozTarget)
			rat = fmt.Sprintf("%.2f× (muster ÷ tooz)", r)
		}
		t.add(b.name, fmt.Sprintf("lock throughput, %d client(s), ops/s", c), opsCell(mper, merr), "", "", opsCell(tper, terr), "", "", rat, "", verd)
	}
	return nil
}

// appendRate adds a rate (operations a second) to per as the time one
// operation took; a round that did none adds nothing.
func appendRate(per samples, opsPerSec float64) samples {
	if opsPerSec <= 0 {
		return per
	}
	return append(per, time.Duration(float64(time.Second)/opsPerSec))
}

// opsCell is the median round's rate.
func opsCell(per samples, err error) string {
	if err != nil && len(per) == 0 {
		return "err"
	}
	if len(per) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", float64(time.Second)/float64(per.median()))
}
func ms_(d time.Duration) string { return ms(d) }

// rawBatch times k calls of the raw client's f, each followed by an
// untimed undo when there is one (join's leave).
func rawBatch(f, undo func() error, k int) (samples, error) {
	var out samples
	for range k {
		d, err := timeIt(f)
		if err == nil && undo != nil {
			err = undo()
		}
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

func cellOr(s samples, err error, f func() time.Duration) string {
	if err != nil && len(s) == 0 {
		return "err"
	}
	if len(s) == 0 {
		return "—"
	}
	return ms(f())
}

// musterBatch times k calls of f on s; join and lock (f nil) are the
// timed Join (then an untimed Leave) and TryAcquire+Release.
func musterBatch(ctx context.Context, s *session, name string, f func(*session) error, group, ns string, k int) (samples, error) {
	var out samples
	for range k {
		var d time.Duration
		var err error
		switch {
		case f != nil:
			d, err = timeIt(func() error { return f(s) })
		case name == "join":
			d, err = timeIt(func() error { return s.sg.Join(ctx, group, capsA) })
			if err == nil {
				err = s.sg.Leave(ctx, group)
			}
		default:
			l := s.sg.Lock("ml" + ns + "-" + s.sg.Member())
			d, err = timeIt(func() error {
				if _, err := l.TryAcquire(ctx); err != nil {
					return err
				}
				return l.Release(ctx)
			})
		}
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}
