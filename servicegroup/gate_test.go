package servicegroup_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// A gated factory wraps the memory backend so a test can pause, fail or
// follow up any call of any session it opened, at a chosen point. The
// backend does everything for real; the gates only choose the interleaving
// that a race would otherwise leave to luck.

// hook runs around one call: before it reaches the backend (pre) and after
// (post, with the call's error, which it may replace). Either may block.
type hook struct {
	pre  func(d *gated)
	fail func(d *gated) error // non-nil: the call fails so, never reaching the backend
	post func(d *gated, err error) error
}

type gates struct {
	mu       sync.Mutex
	hooks    map[string]hook // by method name
	opened   []*gated
	beatFail atomic.Bool // heartbeats fail as if the backend were unreachable
}

func (g *gates) set(method string, h hook) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hooks == nil {
		g.hooks = map[string]hook{}
	}
	g.hooks[method] = h
}

func (g *gates) clear(method string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.hooks, method)
}

func (g *gates) session(i int) *gated {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i >= len(g.opened) {
		return nil
	}
	return g.opened[i]
}

func (g *gates) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.opened)
}

func (g *gates) open(ctx context.Context, o driver.Options) (driver.Driver, error) {
	d, err := memory.Open(ctx, o)
	if err != nil {
		return nil, err
	}
	gd := &gated{Driver: d, g: g}
	g.mu.Lock()
	gd.n = len(g.opened)
	g.opened = append(g.opened, gd)
	g.mu.Unlock()
	return gd, nil
}

type gated struct {
	driver.Driver
	g *gates
	n int // the how-manieth session this factory opened
}

func (d *gated) SessionID() string {
	if sid, ok := d.Driver.(driver.SessionID); ok {
		return sid.SessionID()
	}
	return ""
}

func (d *gated) run(method string, call func() error) error {
	d.g.mu.Lock()
	h := d.g.hooks[method]
	d.g.mu.Unlock()
	if h.pre != nil {
		h.pre(d)
	}
	if h.fail != nil {
		if err := h.fail(d); err != nil {
			return err
		}
	}
	err := call()
	if h.post != nil {
		err = h.post(d, err)
	}
	return err
}

func (d *gated) Heartbeat(ctx context.Context) error {
	if d.g.beatFail.Load() {
		return fmt.Errorf("gated: %w", driver.ErrUnavailable)
	}
	return d.run("Heartbeat", func() error { return d.Driver.Heartbeat(ctx) })
}

func (d *gated) Close(ctx context.Context) error {
	return d.run("Close", func() error { return d.Driver.Close(ctx) })
}

func (d *gated) CreateGroup(ctx context.Context, g string) error {
	return d.run("CreateGroup", func() error { return d.Driver.CreateGroup(ctx, g) })
}

func (d *gated) Join(ctx context.Context, g string, caps []byte) error {
	return d.run("Join", func() error { return d.Driver.Join(ctx, g, caps) })
}

func (d *gated) Members(ctx context.Context, g string) (ms []driver.Member, err error) {
	err = d.run("Members", func() error { ms, err = d.Driver.Members(ctx, g); return err })
	return ms, err
}

func (d *gated) TryLock(ctx context.Context, name string) (tok driver.Token, err error) {
	err = d.run("TryLock", func() error { tok, err = d.Driver.TryLock(ctx, name); return err })
	return tok, err
}

func (d *gated) Unlock(ctx context.Context, name string, tok driver.Token) error {
	return d.run("Unlock", func() error { return d.Driver.Unlock(ctx, name, tok) })
}

func (d *gated) LockHolder(ctx context.Context, name string) (h driver.LockHolder, err error) {
	err = d.run("LockHolder", func() error { h, err = d.Driver.LockHolder(ctx, name); return err })
	return h, err
}

func (d *gated) BreakLock(ctx context.Context, name string) error {
	return d.run("BreakLock", func() error { return d.Driver.BreakLock(ctx, name) })
}

// point is a place a call stops at until the test lets it go.
type point struct {
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func newPoint() *point { return &point{reached: make(chan struct{}), release: make(chan struct{})} }

// stop is called by the gated call: it says it is here and waits.
func (p *point) stop() {
	p.once.Do(func() { close(p.reached) })
	<-p.release
}

func (p *point) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-p.reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never reached", what)
	}
}

func (p *point) go_() { close(p.release) }

var memN atomic.Int64

// openGated opens member through a fresh gated factory on the memory store
// url (shared by every session of the test).
func openGated(t *testing.T, url, member string, edit ...func(*servicegroup.Config)) (*servicegroup.ServiceGroup, *gates) {
	t.Helper()
	g := &gates{}
	cfg := servicegroup.Config{URL: url, Member: member,
		HeartbeatInterval: 50 * time.Millisecond, MemberTTL: 400 * time.Millisecond,
		DialTimeout: 5 * time.Second, WatchInterval: 20 * time.Millisecond}
	for _, e := range edit {
		e(&cfg)
	}
	sg, err := servicegroup.OpenDriver(context.Background(), cfg, "memory", g.open)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.mu.Lock()
		g.hooks = nil
		g.mu.Unlock()
		g.beatFail.Store(false)
		_ = sg.Close(context.Background())
	})
	return sg, g
}

func memURL() string { return fmt.Sprintf("memory://gate-%d", memN.Add(1)) }

func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func bgctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// holderOK checks the backend's holder of name against l: if l says it
// holds the lock, the backend must agree on the token.
func holderOK(t *testing.T, obs *servicegroup.ServiceGroup, l *servicegroup.Lock, name string) {
	t.Helper()
	m, tok, err := obs.LockHolder(bgctx(t), name)
	switch {
	case l.Held() && err != nil:
		t.Errorf("Lock says held (token %d), backend says %v", l.Token(), err)
	case l.Held() && tok != l.Token():
		t.Errorf("Lock says held with token %d, backend says %s holds %d", l.Token(), m, tok)
	}
}

var errTransient = errors.New("gated: transient failure")
