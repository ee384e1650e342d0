package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/metrics"
)

// metricsCommands serve GET /metrics with --metrics-listen (or the
// metrics.listen key); the agents also serve it on their status listener.
var metricsCommands = map[string]bool{
	"agent compute": true, "agent central": true,
	"join": true, "campaign": true, "watch": true, "lock": true, "status": true,
}

// followsGroup are the commands whose first argument is a group whose
// members the metrics follow (muster_members): those that watch it. (join
// and campaign do not: a fleet of members each listing the whole group
// would load the backend with the fleet's size squared.)
var followsGroup = map[string]bool{"watch": true}

// metricsListen is --metrics-listen (kept here, not in opts, as lock keeps
// --kill-after).
var metricsListen string

var addMetricsFlagsOnce sync.Once

// addMetricsFlags adds --metrics-listen to the flags of every command in
// metricsCommands, once all are registered, so that parsing and help both
// see it.
func addMetricsFlags() {
	addMetricsFlagsOnce.Do(func() {
		for name := range metricsCommands {
			c := commands[name]
			if c == nil {
				continue
			}
			own := c.flags
			c.flags = func(fs *flag.FlagSet, o *opts) {
				if own != nil {
					own(fs, o)
				}
				fs.StringVar(&metricsListen, "metrics-listen", "", "serve Prometheus metrics on GET http://`HOST:PORT`/metrics (default: metrics.listen)")
			}
		}
	})
}

// metricsRun is one command's metrics: the collectors, the groups to
// follow, and the goroutines serving and following them.
type metricsRun struct {
	m     *metrics.Metrics
	group string // followed once a session is open; "" for none
	ctx   context.Context
	wg    sync.WaitGroup
	log   *zap.Logger
}

// collectors are the command's metrics, nil when off.
func (r *metricsRun) collectors() *metrics.Metrics {
	if r == nil {
		return nil
	}
	return r.m
}

// observer is what e.open sets as the session's Observer.
func (e *env) observer() servicegroup.Observer {
	if e.mx == nil {
		return nil // not a typed nil: no observing at all
	}
	return e.mx.m
}

// followMetrics follows the command's group through sg (a session e.open
// opened) until sg is closed or the command ends.
func (e *env) followMetrics(sg *servicegroup.ServiceGroup) {
	r := e.mx
	if r == nil || r.group == "" {
		return
	}
	group := r.group
	r.group = "" // one session follows it
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.m.Follow(r.ctx, sg, group)
	}()
}

// serveMetrics turns metrics on for command name: always for the agents
// (they serve /metrics on their status listener), and for the other
// commands in metricsCommands when --metrics-listen or metrics.listen
// gives an address, which it then serves. stop ends it all.
func (e *env) serveMetrics(ctx context.Context, name string, args []string) (stop func(), err error) {
	if !metricsCommands[name] {
		return func() {}, nil
	}
	listen := e.cfg.Metrics.Listen
	if metricsListen != "" {
		listen = metricsListen
	}
	if listen == "" && !strings.HasPrefix(name, "agent ") {
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &metricsRun{m: metrics.New(), ctx: ctx, log: e.log}
	if followsGroup[name] && len(args) > 0 {
		r.group = args[0]
	}
	e.mx = r
	stop = func() {
		cancel()
		r.wg.Wait()
	}
	if listen == "" {
		return stop, nil
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("metrics: listen %s: %w", listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", r.m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Warn("metrics server failed", zap.Error(err))
		}
	}()
	go func() {
		defer r.wg.Done()
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	e.log.Info("serving metrics", zap.String("url", "http://"+ln.Addr().String()+"/metrics"))
	return stop, nil
}
