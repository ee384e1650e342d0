package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
)

// freeAddr is a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// scrape GETs a /metrics page; "" if it does not answer 200.
func scrape(url string) string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

// sample is the value of the series named exactly series (name{labels})
// in a text-format page, summed over the series that start with it when
// series ends in "{"; -1 if none.
func sample(page, series string) float64 {
	total, found := 0.0, false
	sc := bufio.NewScanner(strings.NewReader(page))
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if name == series || (strings.HasSuffix(series, "{") && strings.HasPrefix(name, series)) {
			v, err := strconv.ParseFloat(val, 64)
			if err == nil {
				total, found = total+v, true
			}
		}
	}
	if !found {
		return -1
	}
	return total
}

// promtool checks a metrics page with Debian's promtool (package
// prometheus): missing is a skip, or a failure under CI=true.
func promtool(t *testing.T, page string) {
	t.Helper()
	path, err := testserver.Lookup("prometheus", "promtool")
	if err != nil {
		testserver.Missing(t, err)
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(page)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out.String())
	}
}

// TestAgentMetrics: a compute agent's /metrics (on its status listener and
// on --metrics-listen) passes promtool and shows heartbeats and the
// session's state; killing its plugin shows in the restart and re-open
// counters.
func TestAgentMetrics(t *testing.T) {
	b := backendFlags(t, "plugin")
	listen, mlisten := freeAddr(t), freeAddr(t)
	agent := start(t, append(b, "agent", "compute", "--member", "m1", "--listen", listen, "--metrics-listen", mlisten)...)
	url := "http://" + listen + "/metrics"
	var page string
	eventually(t, 30*time.Second, "the agent heartbeats, as its /metrics shows", func() bool {
		page = scrape(url)
		return sample(page, `muster_session_state{state="up"}`) == 1 &&
			sample(page, "muster_heartbeat_duration_seconds_count") >= 2
	})
	promtool(t, page)
	if other := scrape("http://" + mlisten + "/metrics"); sample(other, `muster_session_state{state="up"}`) != 1 {
		t.Fatalf("--metrics-listen serves no session state:\n%s", other)
	}
	for _, series := range []string{
		"muster_heartbeat_duration_seconds_bucket{", `muster_plugin_starts_total{plugin="file"}`,
		`muster_backend_call_duration_seconds_count{op="join",outcome="ok"}`, "muster_locks_held",
		"process_resident_memory_bytes",
	} {
		if sample(page, series) < 0 {
			t.Errorf("no %s in:\n%s", series, page)
		}
	}

	plugins := pluginOf(t, agent.Process.Pid)
	if len(plugins) != 1 {
		t.Fatalf("plugins of the agent: %v", plugins)
	}
	if err := syscall.Kill(plugins[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the plugin's restart and the session's re-open counted", func() bool {
		page = scrape(url)
		return sample(page, `muster_plugin_restarts_total{plugin="file"}`) >= 1 &&
			sample(page, "muster_session_reopens_total{") >= 1 &&
			sample(page, `muster_session_state{state="up"}`) == 1
	})
	if got := sample(page, `muster_plugin_exits_total{plugin="file",reason="lost"}`); got < 1 {
		t.Errorf("plugin exits (lost) = %v", got)
	}
	promtool(t, page)
}

// TestJoinWatchMetrics: join serves /metrics with --metrics-listen; watch
// also follows its group's members, and counts a killed one down.
func TestJoinWatchMetrics(t *testing.T) {
	b := backendFlags(t, "inprocess")
	joinAddr, watchAddr := freeAddr(t), freeAddr(t)
	start(t, append(b, "join", "web", "a", "--metrics-listen", joinAddr)...)
	victim := start(t, append(b, "join", "web", "b")...)
	eventually(t, 30*time.Second, "join's metrics show its session", func() bool {
		return sample(scrape("http://"+joinAddr+"/metrics"), `muster_session_state{state="up"}`) == 1
	})
	start(t, append(b, "watch", "web", "--metrics-listen", watchAddr)...)
	eventually(t, 30*time.Second, "watch's metrics follow the group", func() bool {
		return sample(scrape("http://"+watchAddr+"/metrics"), `muster_members{group="web",state="up"}`) == 2
	})
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "watch's metrics count the killed member down", func() bool {
		page := scrape("http://" + watchAddr + "/metrics")
		return sample(page, `muster_members{group="web",state="up"}`) == 1 &&
			sample(page, `muster_members{group="web",state="down"}`) == 1
	})
}

// TestLockCampaignMetrics: lock (while it holds) and campaign serve their
// locks and leadership.
func TestLockCampaignMetrics(t *testing.T) {
	b := backendFlags(t, "inprocess")
	lockAddr, leadAddr := freeAddr(t), freeAddr(t)
	start(t, append(b, "lock", "job", "--metrics-listen", lockAddr, "--", "sleep", "60")...)
	start(t, append(b, "campaign", "web", "boss", "--metrics-listen", leadAddr)...)
	eventually(t, 30*time.Second, "lock's metrics show the lock held", func() bool {
		return sample(scrape("http://"+lockAddr+"/metrics"), "muster_locks_held") == 1
	})
	eventually(t, 30*time.Second, "campaign's metrics show the leadership", func() bool {
		page := scrape("http://" + leadAddr + "/metrics")
		return sample(page, `muster_leader{group="web"}`) == 1 &&
			sample(page, `muster_leadership_changes_total{change="won",group="web"}`) == 1
	})
}
