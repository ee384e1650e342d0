package compute

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	_ "github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func session(url, member string) servicegroup.Config {
	return servicegroup.Config{URL: url, Member: member,
		HeartbeatInterval: 50 * time.Millisecond, MemberTTL: 300 * time.Millisecond}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestRun(t *testing.T) {
	url := "memory://compute-" + t.Name()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Session:      session(url, "host-1"),
			Capabilities: map[string]any{"zone": "az1", "vcpus": int64(64)},
			Version:      "1.2.3",
			Ready:        func(u string) { ready <- u },
		})
	}()
	var statusURL string
	select {
	case statusURL = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}

	obs, err := servicegroup.Open(context.Background(), session(url, "observer"))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close(context.Background())
	ms, err := obs.Members(context.Background(), DefaultGroup)
	if err != nil || len(ms) != 1 {
		t.Fatalf("members %v, %v", ms, err)
	}
	caps := ms[0].Capabilities
	if ms[0].ID != "host-1" || caps["status_url"] != statusURL || caps["zone"] != "az1" ||
		caps["version"] != "1.2.3" || caps["vcpus"] != int64(64) {
		t.Fatalf("member %s caps %v", ms[0].ID, caps)
	}
	if _, ok := caps["memory_mb"].(int64); !ok {
		t.Errorf("memory_mb capability %v", caps["memory_mb"])
	}

	code, body := get(t, statusURL)
	var st Status
	if err := json.Unmarshal(body, &st); code != 200 || err != nil {
		t.Fatalf("/status: %d %s %v", code, body, err)
	}
	if st.Member != "host-1" || st.Group != "compute" || st.JoinedAt.IsZero() || st.MemTotalMB <= 0 {
		t.Errorf("/status: %s", body)
	}
	healthz := statusURL[:len(statusURL)-len("/status")] + "/healthz"
	if code, body := get(t, healthz); code != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	// Fenced by an operator: not healthy.
	if err := obs.ForceDown(context.Background(), DefaultGroup, "host-1", true); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, healthz); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz of a forced-down member: %d", code)
	}
	_ = obs.ForceDown(context.Background(), DefaultGroup, "host-1", false)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// It left at once, not after its TTL.
	if up, err := obs.IsUp(context.Background(), DefaultGroup, "host-1"); up || err != nil {
		t.Errorf("after stop: up=%v err=%v", up, err)
	}
}

func TestRunFailsToListen(t *testing.T) {
	err := Run(context.Background(), Options{Session: session("memory://x", "h"), Listen: "256.0.0.1:1"})
	if err == nil {
		t.Fatal("want an error")
	}
	t.Log(err)
}
