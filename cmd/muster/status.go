package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/metrics"
)

// Flags of status only (kept here, as lock keeps --kill-after).
var (
	statusAllowForceDown bool
	statusRing           string
)

func init() {
	commands["status"] = &command{
		usage: "status [GROUP...] --listen HOST:PORT [--allow-force-down] [--ring GROUP:KEYS_GROUP]",
		help: "serve a live status page of every group (or those named): members up, down and forced down, " +
			"last seen, capabilities, leaders, and the hash ring's split; read-only unless --allow-force-down",
		longRunning: true,
		flags: func(fs *flag.FlagSet, o *opts) {
			fs.StringVar(&o.listen, "listen", "127.0.0.1:8090", "HTTP `address` of the page")
			fs.BoolVar(&statusAllowForceDown, "allow-force-down", false, "let the page force members down and up")
			fs.StringVar(&statusRing, "ring", "", "draw the ring of `GROUP:KEYS_GROUP`: GROUP's members split KEYS_GROUP's members as keys "+
				"(default: agent.central.group:agent.central.tasks_group, with agent.central.tasks as extra keys)")
		},
		nargs: atLeast(0),
		run:   runStatus,
	}
}

// Timings of the status page's server side.
const (
	statusRefresh     = time.Second     // re-read members: fresh "last seen"
	statusGroupsEvery = 5 * time.Second // look for new groups
	statusRetry       = 2 * time.Second // follow a group again after an error
)

// statusBoard is the page's state: each followed group's roster, and the
// browsers listening for changes.
type statusBoard struct {
	sg      *servicegroup.ServiceGroup
	backend string
	named   []string // the groups asked for; nil: every group
	ring    ringSpec
	allowFD bool
	mx      *metrics.Metrics // nil when off
	log     *zap.Logger

	mu        sync.Mutex
	rosters   map[string]metrics.Roster
	following map[string]bool
	subs      map[chan struct{}]bool
}

func runStatus(ctx context.Context, e *env, groups []string) error {
	ring, err := e.ringSpec()
	if err != nil {
		return err
	}
	for _, g := range groups {
		if err := driver.ValidateName("group", g); err != nil {
			return fmt.Errorf("status: %w", err)
		}
	}
	ln, err := net.Listen("tcp", e.o.listen)
	if err != nil {
		return fmt.Errorf("status: listen %s: %w", e.o.listen, err)
	}
	defer ln.Close()
	sg, err := e.open(ctx, "")
	if err != nil {
		return err
	}
	defer sg.Close(context.Background())
	b := &statusBoard{
		sg: sg, backend: e.cfg.Backend.RedactedURL(), named: groups, ring: ring,
		allowFD: statusAllowForceDown, mx: e.mx.collectors(), log: e.log,
		rosters: map[string]metrics.Roster{}, following: map[string]bool{}, subs: map[chan struct{}]bool{},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.discover(ctx, &wg)
	}()
	srv := &http.Server{Handler: b.handler(ctx), ReadHeaderTimeout: 5 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	e.log.Info("status page up", zap.String("url", "http://"+ln.Addr().String()+"/"),
		zap.Bool("allow_force_down", b.allowFD))
	fmt.Fprintf(e.stdout, "status page on http://%s/\n", ln.Addr())
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	cancel() // ends the followers and every event stream
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	_ = srv.Shutdown(sctx)
	scancel()
	wg.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("status: http: %w", err)
	}
	return nil
}

// discover follows the named groups, or every group, looking for new ones
// every few seconds, until ctx ends.
func (b *statusBoard) discover(ctx context.Context, wg *sync.WaitGroup) {
	t := time.NewTicker(statusGroupsEvery)
	defer t.Stop()
	for {
		groups := b.named
		if groups == nil {
			rctx, cancel := context.WithTimeout(ctx, statusGroupsEvery)
			gs, err := b.sg.Groups(rctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				b.log.Warn("cannot list groups", zap.Error(err))
			}
			groups = gs
		}
		for _, g := range groups {
			b.mu.Lock()
			started := b.following[g]
			b.following[g] = true
			b.mu.Unlock()
			if !started {
				wg.Add(1)
				go func() {
					defer wg.Done()
					b.follow(ctx, g)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// follow keeps group's roster until ctx ends. A named group that does not
// exist (yet) is shown empty and tried again; a discovered one that is
// deleted is dropped.
func (b *statusBoard) follow(ctx context.Context, group string) {
	defer func() {
		b.mu.Lock()
		delete(b.following, group)
		b.mu.Unlock()
	}()
	for {
		err := metrics.Follow(ctx, b.sg, group, metrics.FollowOptions{Refresh: statusRefresh}, func(r metrics.Roster) {
			b.set(group, r, true)
		})
		if ctx.Err() != nil || errors.Is(err, servicegroup.ErrClosed) {
			return
		}
		if errors.Is(err, servicegroup.ErrGroupNotFound) && b.named == nil {
			b.set(group, metrics.Roster{}, false)
			return
		}
		if errors.Is(err, servicegroup.ErrGroupNotFound) {
			b.set(group, metrics.Roster{Group: group}, true)
		} else {
			b.log.Warn("following a group failed; retrying", zap.String("group", group), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(statusRetry):
		}
	}
}

// set stores (or, keep false, drops) group's roster and tells every
// listening browser.
func (b *statusBoard) set(group string, r metrics.Roster, keep bool) {
	b.mu.Lock()
	if keep {
		b.rosters[group] = r
	} else {
		delete(b.rosters, group)
	}
	for ch := range b.subs {
		select {
		case ch <- struct{}{}:
		default: // one pending wake-up is enough: it sends the latest state
		}
	}
	b.mu.Unlock()
	if b.mx != nil {
		up, down, forced := r.Counts()
		b.mx.SetMembers(group, up, down, forced)
	}
}

func (b *statusBoard) subscribe() (ch chan struct{}, cancel func()) {
	ch = make(chan struct{}, 1)
	b.mu.Lock()
	b.subs[ch] = true
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}
}

// groups returns the rosters, sorted by group.
func (b *statusBoard) groups() []metrics.Roster {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]metrics.Roster, 0, len(b.rosters))
	for _, r := range b.rosters {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b metrics.Roster) int { return strings.Compare(a.Group, b.Group) })
	return out
}
