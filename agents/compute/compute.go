// Package compute is the compute agent (`muster agent compute`): Nova's
// nova-compute as far as the service group is concerned. It joins the
// compute group with what it knows of its host as capabilities, stays up
// while it runs (the core heartbeats), serves its live status over HTTP, and
// leaves the group at once when stopped.
//
// Capabilities it sets: status_url (where its /status is served), vcpus,
// memory_mb, version, plus Options.Capabilities (which win on a clash,
// status_url aside).
package compute

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/agents/internal/host"
	"github.com/musterhq/muster/internal/buildinfo"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/metrics"
)

// DefaultGroup is the group compute agents join.
const DefaultGroup = "compute"

// Options configure Run.
type Options struct {
	// Session opens the agent's session. Member defaults to the hostname.
	Session servicegroup.Config
	// Group to join, created if needed. Default "compute".
	Group string
	// Listen is the HTTP address of /status and /healthz. Default
	// "127.0.0.1:0": a free port, given to Ready and logged.
	Listen string
	// Capabilities are added to the ones read from the host.
	Capabilities map[string]any
	// Version is reported as the "version" capability. Default: the
	// binary's module version.
	Version string
	// Logger receives the agent's log. Default: none.
	Logger *zap.Logger
	// Ready, if set, is called once the agent has joined and serves, with
	// the URL of its /status.
	Ready func(statusURL string)
	// Metrics, if set, observes the session (unless Session.Observer is
	// set) and is served on GET /metrics. The agent does not follow the
	// group's members: every compute agent listing the whole group would
	// load the backend with the fleet's size squared.
	Metrics *metrics.Metrics
}

// Status is the body of GET /status.
type Status struct {
	Member        string     `json:"member"`
	Group         string     `json:"group"`
	JoinedAt      time.Time  `json:"joined_at"`
	UptimeSeconds float64    `json:"uptime_seconds"`
	Uptime        string     `json:"uptime"`
	LoadAverage   [3]float64 `json:"load_average"`
	MemAvailMB    int64      `json:"mem_available_mb"`
	MemTotalMB    int64      `json:"mem_total_mb"`
	VCPUs         int        `json:"vcpus"`
	Version       string     `json:"version"`
}

// Run joins the group and serves until ctx ends (SIGTERM, SIGINT), then
// leaves the group and returns nil. It returns an error if it cannot start,
// or if its HTTP server fails.
func Run(ctx context.Context, o Options) error {
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Version == "" {
		o.Version = buildinfo.Version()
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Session.Member == "" {
		o.Session.Member = host.Hostname()
	}
	if o.Session.Logger == nil {
		o.Session.Logger = o.Logger
	}
	if o.Metrics != nil && o.Session.Observer == nil {
		o.Session.Observer = o.Metrics
	}
	log := o.Logger.Sugar().With("agent", "compute", "member", o.Session.Member)

	ln, statusURL, err := host.Listen(o.Listen, "/status")
	if err != nil {
		return fmt.Errorf("compute agent: %w", err)
	}
	defer ln.Close()
	sg, err := servicegroup.Open(ctx, o.Session)
	if err != nil {
		return fmt.Errorf("compute agent: %w", err)
	}
	caps := capabilities(o, statusURL)
	if err := sg.JoinOrCreate(ctx, o.Group, caps); err != nil {
		_ = sg.Close(context.Background())
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("compute agent: join %q: %w", o.Group, err)
	}
	joined := time.Now()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		host.WriteJSON(w, status(o, sg.Member(), joined))
	})
	mux.HandleFunc("GET /healthz", host.Healthz(sg, o.Group))
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics.Handler())
	}

	log.Infow("compute agent up", "group", o.Group, "status_url", statusURL, "capabilities", caps)
	if o.Ready != nil {
		o.Ready(statusURL)
	}
	serveErr := host.Serve(ctx, ln, mux)
	if err := host.Leave(sg, o.Group); err != nil {
		log.Warnw("leaving the group failed; the backend drops the member after its TTL", "error", err)
	} else {
		log.Infow("left the group", "group", o.Group)
	}
	if serveErr != nil {
		return fmt.Errorf("compute agent: %w", serveErr)
	}
	return nil
}

func capabilities(o Options, statusURL string) servicegroup.Capabilities {
	caps := servicegroup.Capabilities{
		"vcpus":   int64(runtime.NumCPU()),
		"version": o.Version,
	}
	if m, err := host.Memory(); err == nil {
		caps["memory_mb"] = m.TotalMB
	}
	for k, v := range o.Capabilities {
		caps[k] = v
	}
	caps["status_url"] = statusURL
	return caps
}

func status(o Options, member string, joined time.Time) Status {
	up := time.Since(joined)
	st := Status{
		Member:        member,
		Group:         o.Group,
		JoinedAt:      joined.UTC(),
		UptimeSeconds: up.Seconds(),
		Uptime:        up.Round(time.Second).String(),
		VCPUs:         runtime.NumCPU(),
		Version:       o.Version,
	}
	st.LoadAverage, _ = host.LoadAverage()
	if m, err := host.Memory(); err == nil {
		st.MemAvailMB, st.MemTotalMB = m.AvailableMB, m.TotalMB
	}
	return st
}
