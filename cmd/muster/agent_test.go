package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
)

// Timings of the agents in these tests: short, so that a dead agent is
// noticed quickly, with the TTL several heartbeats long so that a loaded CI
// machine does not expire live ones.
const (
	agentHeartbeat = 250 * time.Millisecond
	agentTTL       = 1500 * time.Millisecond
	agentPoll      = time.Second
)

// buildAgentBinaries builds muster into a temporary directory and, when the plugin
// host and the file plugin build and work, muster-plugin-file beside it. It
// returns the binary and the mode the file backend can run in.
func buildAgentBinaries(t *testing.T) (bin, mode string) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, "muster")
	goBuildAgent(t, bin, "github.com/musterhq/muster/cmd/muster")
	mode = "inprocess"
	plugin := filepath.Join(dir, "muster-plugin-file")
	if out, err := exec.Command("go", "build", "-o", plugin, "github.com/musterhq/muster/plugins/file/cmd/muster-plugin-file").CombinedOutput(); err != nil {
		t.Logf("no file plugin (%v: %s): the file backend runs in-process", err, bytes.TrimSpace(out))
		return bin, mode
	}
	probe := exec.Command(bin, "--config=", "--url", "file://"+filepath.Join(dir, "probe"), "--mode", "plugin", "groups")
	if out, err := probe.CombinedOutput(); err != nil {
		t.Logf("plugin mode does not work yet (%s): the file backend runs in-process", bytes.TrimSpace(out))
		return bin, mode
	}
	return bin, "plugin"
}

func goBuildAgent(t *testing.T, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// proc is an agent process.
type agentProc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

type agentFleet struct {
	t     *testing.T
	bin   string
	mode  string
	url   string
	dir   string
	procs map[string]*agentProc
}

func newAgentFleet(t *testing.T) *agentFleet {
	bin, mode := buildAgentBinaries(t)
	dir := t.TempDir()
	f := &agentFleet{t: t, bin: bin, mode: mode, dir: dir,
		url: "file://" + filepath.Join(dir, "backend"), procs: map[string]*agentProc{}}
	t.Cleanup(f.stop)
	return f
}

func (f *agentFleet) start(kind, name string, extra ...string) {
	f.t.Helper()
	logPath := filepath.Join(f.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		f.t.Fatal(err)
	}
	defer logf.Close()
	args := []string{"--config=", "--url", f.url, "--mode", f.mode,
		"--heartbeat-interval", agentHeartbeat.String(), "--member-ttl", agentTTL.String(),
		"agent", kind, "--member", name, "--listen", "127.0.0.1:0"}
	cmd := exec.Command(f.bin, append(args, extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "TMPDIR="+f.dir) // plugin sockets of killed agents
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	p := &agentProc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	f.procs[name] = p
}

// kill kills an agent with SIGKILL, as a crash would.
func (f *agentFleet) kill(name string) {
	p := f.procs[name]
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (f *agentFleet) stop() {
	for _, p := range f.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM) // the agent stops its plugin
	}
	for _, p := range f.procs {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			f.t.Errorf("%s did not stop on SIGTERM", p.name)
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if f.t.Failed() {
			b, _ := os.ReadFile(p.log)
			f.t.Logf("--- %s log:\n%s", p.name, b)
		}
	}
}

// observer is a session of the test's own on the fleet's backend.
func (f *agentFleet) observer() *servicegroup.ServiceGroup {
	f.t.Helper()
	sg, err := servicegroup.Open(context.Background(), servicegroup.Config{
		URL: f.url, Member: "test-observer", Mode: servicegroup.ModeInProcess,
		HeartbeatInterval: agentHeartbeat, MemberTTL: agentTTL,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = sg.Close(context.Background()) })
	return sg
}

type centralStatusJSON struct {
	Member     string   `json:"member"`
	Assigned   []string `json:"assigned"`
	Members    []string `json:"members"`
	Leader     string   `json:"leader"`
	TasksTotal int      `json:"tasks_total"`
}

// centrals reads the /status of every live central agent, by member id.
func centralStatuses(t *testing.T, obs *servicegroup.ServiceGroup) map[string]centralStatusJSON {
	t.Helper()
	ms, err := obs.Members(context.Background(), "central")
	if err != nil {
		return nil
	}
	out := map[string]centralStatusJSON{}
	client := &http.Client{Timeout: time.Second}
	for _, m := range ms {
		url, _ := m.Capabilities["status_url"].(string)
		resp, err := client.Get(url)
		if err != nil {
			continue // dead but not yet expired
		}
		var st centralStatusJSON
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil {
			out[m.ID] = st
		}
	}
	return out
}

// waitCentralSplit waits until exactly the central agents want are answering, each
// seeing the others, and their assigned lists are disjoint with union
// tasks. It returns how long that took.
func waitCentralSplit(t *testing.T, obs *servicegroup.ServiceGroup, want, tasks []string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last map[string]centralStatusJSON
	for time.Since(start) < within {
		last = centralStatuses(t, obs)
		if centralSplitOK(last, want, tasks) {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("after %v the central agents do not split %v between %v: %+v", within, tasks, want, last)
	return 0
}

func centralSplitOK(sts map[string]centralStatusJSON, want, tasks []string) bool {
	if len(sts) != len(want) {
		return false
	}
	var all []string
	for _, name := range want {
		st, ok := sts[name]
		if !ok || !slices.Equal(st.Members, want) {
			return false
		}
		all = append(all, st.Assigned...)
	}
	sort.Strings(all)
	return slices.Equal(all, tasks) // equal sorted lists: disjoint, union = tasks
}

func TestAgentsEndToEnd(t *testing.T) {
	t.Parallel()
	f := newAgentFleet(t)
	t.Logf("file backend mode: %s", f.mode)
	computes := []string{"compute-1", "compute-2", "compute-3"}
	for _, c := range computes {
		f.start("compute", c)
	}
	for _, c := range []string{"central-1", "central-2"} {
		f.start("central", c, "--poll-interval", agentPoll.String(), "--output", filepath.Join(f.dir, c+".jsonl"))
	}
	obs := f.observer()
	waitCentralSplit(t, obs, []string{"central-1", "central-2"}, computes, 20*time.Second)
	settled := time.Now()

	// Healthy agents answer /healthz.
	ms, err := obs.Members(context.Background(), "compute")
	if err != nil || len(ms) != 3 {
		t.Fatalf("compute members %v, %v", ms, err)
	}
	for _, m := range ms {
		url := strings.TrimSuffix(m.Capabilities["status_url"].(string), "/status") + "/healthz"
		resp, err := http.Get(url)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s /healthz: %v %v", m.ID, resp, err)
		}
		resp.Body.Close()
	}

	// Stable membership: over a few cycles, no task is polled twice in
	// one cycle (one poll per task per interval, by one agent).
	time.Sleep(3 * agentPoll)
	pollers := map[string]map[string]bool{} // task -> agents that polled it
	for _, c := range []string{"central-1", "central-2"} {
		for task, n := range checkPollRecords(t, filepath.Join(f.dir, c+".jsonl"), c, settled.Add(agentPoll)) {
			if pollers[task] == nil {
				pollers[task] = map[string]bool{}
			}
			pollers[task][c] = n > 0
		}
	}
	for _, task := range computes {
		if len(pollers[task]) != 1 {
			t.Errorf("in a stable membership %s was polled by %v, want exactly one agent", task, pollers[task])
		}
	}

	// A central agent dies: the survivor takes every task.
	bound := agentTTL + agentPoll
	sts := centralStatuses(t, obs)
	victim := sts["central-1"].Leader
	if victim == "" {
		victim = "central-1"
	}
	survivor := "central-1"
	if victim == "central-1" {
		survivor = "central-2"
	}
	f.kill(victim)
	took := waitCentralSplit(t, obs, []string{survivor}, computes, 4*bound+5*time.Second)
	t.Logf("%s took over from %s after %v (TTL + poll interval = %v)", survivor, victim, took, bound)

	// A compute agent dies: it leaves every assigned list.
	f.kill("compute-2")
	took = waitCentralSplit(t, obs, []string{survivor}, []string{"compute-1", "compute-3"}, 4*bound+5*time.Second)
	t.Logf("compute-2 left the assigned lists after %v", took)
	deadline := time.Now().Add(4*bound + 5*time.Second)
	for {
		if l, _ := obs.Leader(context.Background(), "central"); l == survivor {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not lead after %s died", survivor, victim)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkPollRecords reads an agent's poll records and checks them: all from the
// agent, well-formed, and no task polled twice within one poll interval. It
// returns how often it polled each task since since.
func checkPollRecords(t *testing.T, path, agent string, since time.Time) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lastPoll := map[string]time.Time{}
	polled := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var rec struct {
			Time       time.Time       `json:"time"`
			Agent      string          `json:"agent"`
			Task       string          `json:"task"`
			OK         bool            `json:"ok"`
			Status     json.RawMessage `json:"status"`
			Error      string          `json:"error"`
			DurationMS *float64        `json:"duration_ms"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%s: bad record %q: %v", path, line, err)
		}
		if rec.Agent != agent || rec.Task == "" || rec.DurationMS == nil || (rec.OK && len(rec.Status) == 0) || (!rec.OK && rec.Error == "") {
			t.Errorf("%s: bad record %s", path, line)
		}
		if prev, ok := lastPoll[rec.Task]; ok && rec.Time.Sub(prev) < agentPoll/2 {
			t.Errorf("%s polled %s twice within %v", agent, rec.Task, rec.Time.Sub(prev))
		}
		lastPoll[rec.Task] = rec.Time
		if rec.Time.After(since) {
			polled[rec.Task]++
		}
	}
	if len(polled) == 0 {
		t.Errorf("%s wrote no records since %v", agent, since)
	}
	return polled
}

// TestRingMatchesTooz checks `muster ring --algorithm tooz` against Python
// tooz's HashRing, on a ring of 7 members with mixed weights.
func TestRingMatchesTooz(t *testing.T) {
	t.Parallel()
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import tooz.hashring").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("python3-tooz is not available (%v: %s)", err, bytes.TrimSpace(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	url := "file://" + filepath.Join(dir, "backend")
	weights := map[string]int{"alpha": 1, "bravo": 2, "charlie": 3, "delta": 1, "echo": 5, "foxtrot": 2, "nœud-ü": 1}
	ctx := context.Background()
	for name, w := range weights {
		sg, err := servicegroup.Open(ctx, servicegroup.Config{URL: url, Member: name, Mode: servicegroup.ModeInProcess,
			HeartbeatInterval: 200 * time.Millisecond, MemberTTL: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer sg.Close(ctx)
		caps := servicegroup.Capabilities{"weight": w}
		if w == 1 && name == "alpha" {
			caps = nil // no capability: weight 1
		}
		if err := sg.JoinOrCreate(ctx, "pollers", caps); err != nil {
			t.Fatal(err)
		}
	}
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = fmt.Sprintf("resource-%d", i)
		if i%10 == 0 {
			keys[i] = fmt.Sprintf("ресурс/%d", i) // non-ASCII keys hash as UTF-8
		}
	}

	goOwners := func(replicas int) []ownersJSON {
		var stdout, stderr bytes.Buffer
		args := append([]string{"--config=", "--url", url, "--mode", "inprocess", "--json", "ring", "pollers",
			"--algorithm", "tooz", "--replicas", fmt.Sprint(replicas)}, keys...)
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("muster ring: exit %d: %s", code, stderr.String())
		}
		var out []ownersJSON
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}

	spec, _ := json.Marshal(map[string]any{"nodes": weights, "keys": keys})
	specPath := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specPath, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	const script = `
import json, sys
from tooz import hashring
spec = json.load(open(sys.argv[1]))
ring = hashring.HashRing([])
for name in sorted(spec["nodes"]):
    ring.add_node(name, weight=spec["nodes"][name])
out = {}
for r in (1, 2):
    out[r] = [sorted(ring.get_nodes(k.encode("utf-8"), replicas=r)) for k in spec["keys"]]
json.dump(out, sys.stdout)
`
	cmd := exec.Command(python, "-c", script, specPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pyOut, err := cmd.Output()
	if err != nil {
		t.Fatalf("python tooz: %v: %s", err, stderr.String())
	}
	var py map[string][][]string
	if err := json.Unmarshal(pyOut, &py); err != nil {
		t.Fatal(err)
	}
	for _, replicas := range []int{1, 2} {
		got := goOwners(replicas)
		want := py[fmt.Sprint(replicas)]
		if len(got) != len(keys) || len(want) != len(keys) {
			t.Fatalf("replicas %d: %d answers from muster, %d from tooz, want %d", replicas, len(got), len(want), len(keys))
		}
		bad := 0
		for i, k := range keys {
			g := slices.Clone(got[i].Owners)
			sort.Strings(g)
			if got[i].Key != k || !slices.Equal(g, want[i]) || got[i].Owner != got[i].Owners[0] {
				if bad++; bad <= 5 {
					t.Errorf("replicas %d, key %q: muster %v, tooz %v", replicas, k, got[i].Owners, want[i])
				}
			}
		}
		if bad > 0 {
			t.Errorf("replicas %d: %d of %d keys differ", replicas, bad, len(keys))
		}
	}
}
