package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	_ "github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/metrics"
)

// A program registers the collectors in its own registry and observes its
// sessions with them.
func Example() {
	m := metrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	ctx := context.Background()
	sg, err := servicegroup.Open(ctx, servicegroup.Config{URL: "memory://example", Member: "a", Observer: m})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sg.Close(ctx)
	if err := sg.JoinOrCreate(ctx, "compute", nil); err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(m.Handler()) // or promhttp.HandlerFor(reg, ...)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "muster_session_state") {
			fmt.Println(line)
		}
	}
	// Output:
	// muster_session_state{state="lost"} 0
	// muster_session_state{state="up"} 1
}
