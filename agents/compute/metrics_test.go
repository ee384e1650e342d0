package compute

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup/metrics"
)

// TestRunMetrics: with Options.Metrics the agent serves /metrics beside
// /status and observes its session.
func TestRunMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Session: session("memory://compute-"+t.Name(), "host-1"),
			Metrics: metrics.New(),
			Ready:   func(u string) { ready <- u },
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
	url := strings.TrimSuffix(statusURL, "/status") + "/metrics"
	want := []string{`muster_session_state{state="up"} 1`, "muster_heartbeat_duration_seconds_count",
		`muster_backend_call_duration_seconds_count{op="join",outcome="ok"} 1`}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(t, url)
		missing := ""
		for _, w := range want {
			if !strings.Contains(string(body), w) {
				missing = w
			}
		}
		if code == 200 && missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics: %d, no %s in:\n%s", code, missing, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
