package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

func sectionFootprint(ctx context.Context, rep *report, bs []*backend) {
	t := &table{
		title: "e. Footprint: resident memory at steady state, binary sizes",
		note:  "`muster --url URL agent compute` (plugin mode, the default): the median of 10 RSS readings over the second half of 5 s (quick: 2 s) of heartbeats; its plugin process is its child. Target: each process ≤ 25 MB RSS.",
		head:  []string{"backend", "muster agent compute RSS", "plugin process RSS", "≤ 25 MB"},
	}
	for _, b := range bs {
		if b.name != "file" && b.name != "redis" && b.name != "etcd" && b.name != "zookeeper" && b.name != "postgresql" {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: e. footprint, %s\n", b.name)
		settle := 5 * time.Second
		if rep.o.quick {
			settle = 2 * time.Second
		}
		a, p, err := agentRSS(ctx, rep.o.pluginDir, b, settle)
		if err != nil {
			t.add(b.name, "error: "+err.Error())
			rep.notes = append(rep.notes, fmt.Sprintf("e. %s: %v", b.name, err))
			continue
		}
		ok := a <= 25<<10 && p <= 25<<10
		t.add(b.name, mib(a), mib(p), verdict(ok))
		rep.target("agent and plugin ≤ 25 MB RSS, "+b.name, fmt.Sprintf("agent %s, plugin %s", mib(a), mib(p)), ok)
	}
	rep.emit(t)
	sizes := &table{title: "e. Binary sizes (go build, not stripped)", head: []string{"binary", "size"}}
	ents, _ := os.ReadDir(rep.o.pluginDir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		if fi, err := os.Stat(filepath.Join(rep.o.pluginDir, n)); err == nil {
			sizes.add(n, fmt.Sprintf("%.1f MB", float64(fi.Size())/1e6))
		}
	}
	rep.emit(sizes)
}

func mib(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// agentRSS runs muster agent compute on a fresh URL of b and returns its
// and its plugin's RSS in KiB after settle.
func agentRSS(ctx context.Context, dir string, b *backend, settle time.Duration) (agent, plugin int64, err error) {
	u, err := b.url(ctx)
	if err != nil {
		return 0, 0, err
	}
	home := filepath.Join(b.tmp, "agent-"+rnd())
	if err := os.MkdirAll(home, 0o755); err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(filepath.Join(dir, "muster"), "--url", u, "agent", "compute", "--member", "fp-"+rnd(), "--listen", "127.0.0.1:0")
	cmd.Dir = home
	cmd.Env = append(os.Environ(), "HOME="+home)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	// Steady state: the median of readings over the second half of
	// settle, so that one reading taken just before a collection does not
	// stand for the process.
	time.Sleep(settle / 2)
	pid := cmd.Process.Pid
	var as, ps []int64
	for range 10 {
		a, err := rssKB(pid)
		if err != nil {
			return 0, 0, fmt.Errorf("agent exited: %s", strings.TrimSpace(out.String()))
		}
		var p int64
		for _, c := range childrenOf(pid) {
			if r, err := rssKB(c); err == nil {
				p += r
			}
		}
		if p == 0 {
			return a, 0, fmt.Errorf("no plugin process under the agent: %s", strings.TrimSpace(out.String()))
		}
		as, ps = append(as, a), append(ps, p)
		time.Sleep(settle / 20)
	}
	slices.Sort(as)
	slices.Sort(ps)
	return as[len(as)/2], ps[len(ps)/2], nil
}
