package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
)

func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// latTarget is table a's: in-process at most 1.3× raw (p50).
const latTarget = 1.3

func sectionLatency(ctx context.Context, rep *report, bs []*backend, n int) {
	t := &table{
		title: "a. Latency per operation: in-process, plugin, raw client",
		note: fmt.Sprintf("%d samples per cell, interleaved (%d where in-process ÷ raw comes within %v× of 1.3: the verdict turns on the noise there). RTs = requests the server received per call (Redis: socket reads, i.e. round trips; etcd: gRPC messages; ZooKeeper: requests; MariaDB: statements), counted in-process (the most frequent count of 20 calls, with the 200 members' keep-alive, one heartbeat at a time spread over 20 s, held off); "+
			"raw RTs for file/memcached/postgresql are by construction. Target: in-process ≤ 1.3× raw (p50). IsUp (View) reads memory; hand-over is a second session's Acquire returning after the first's Release.", n, nearN(n), nearBand),
		head: []string{"backend", "operation", "in-proc p50", "in-proc p99", "plugin p50", "plugin p99", "raw p50", "raw p99", "in-proc ÷ raw", "RTs muster", "RTs raw", "≤ 1.3×"},
	}
	for _, b := range bs {
		fmt.Fprintf(os.Stderr, "bench: a. latency, %s\n", b.name)
		res, err := runLatency(ctx, b, rep.o.pluginDir, n)
		if err != nil {
			t.add(b.name, "error: "+err.Error())
			rep.notes = append(rep.notes, fmt.Sprintf("a. %s: %v", b.name, err))
			continue
		}
		met, total := 0, 0
		for _, op := range latOps() {
			s := res.samples[op.key]
			ip, pl, rw := s["in-process"], s["plugin"], s["raw"]
			cell := func(x samples, v string, q func(samples) string) string {
				if _, ok := res.errs[op.key+"/"+v]; ok {
					return "err"
				}
				if len(x) == 0 {
					return "—"
				}
				return q(x)
			}
			p50 := func(x samples) string { return ms(x.median()) }
			p99 := func(x samples) string { return ms(x.p99()) }
			verd := "—"
			if len(rw) > 0 && len(ip) > 0 {
				ok := float64(ip.median()) <= latTarget*float64(rw.median())
				verd = verdict(ok)
				total++
				if ok {
					met++
				}
			}
			name := op.name
			if op.key == "isupview" && res.errs[op.key+"/in-process"] == errNoView.Error() {
				name += " n/a (no View yet)"
			}
			t.add(b.name, name, cell(ip, "in-process", p50), cell(ip, "in-process", p99), cell(pl, "plugin", p50), cell(pl, "plugin", p99),
				cell(rw, "raw", p50), cell(rw, "raw", p99), ratio(ip.median(), rw.median()), orDash(res.rts[op.key]), orDash(res.rawRTs[op.key]), verd)
		}
		if total > 0 {
			rep.target("in-process ≤ 1.3× raw (p50), "+b.name, fmt.Sprintf("%d of %d operations", met, total), met == total)
		}
		if r1, r200 := res.rts["getall1"], res.rts["getall200"]; r1 != "" && r1 != "—" {
			rep.target("GetAll a constant number of round trips, "+b.name, fmt.Sprintf("%s requests for 1 member, %s for 200", r1, r200), r1 == r200)
		}
		for k, e := range res.errs {
			rep.notes = append(rep.notes, fmt.Sprintf("a. %s %s: %s", b.name, k, e))
		}
	}
	rep.emit(t)
	raws := &table{title: "a. What the raw client does", head: []string{"backend", "raw round trips"}}
	for _, b := range bs {
		raws.add(b.name, rawDescr[b.name])
	}
	rep.emit(raws)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
