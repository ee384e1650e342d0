package drivertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup/driver"
)

// Wrappers of the backend's factory, so a test can reach the sessions the
// core opens. They are the SPI, not a mock: the backend does everything for
// real, including expiring a session whose heartbeats are held back.

// heartbeatMode says what a controlled session does with the core's
// heartbeats.
type heartbeatMode int

const (
	// live: heartbeats reach the backend.
	live heartbeatMode = iota
	// frozen: heartbeats return nil without reaching the backend, which
	// expires the session for real after its TTL; the core believes all is
	// well. Done is held back too, so the core learns of the loss only once
	// thawed.
	frozen
	// partitioned: heartbeats fail as if the backend were unreachable, and
	// Done is held back, as a remote backend could not deliver it.
	partitioned
)

// controlled is a factory whose sessions' heartbeats a test can hold back.
type controlled struct {
	open driver.Factory

	mu     sync.Mutex
	mode   heartbeatMode
	thawed chan struct{} // closed when mode returns to live
	opened []driver.Driver
}

// control wraps the backend's factory. Everything it opens is released
// (thawed) when t ends.
func (s *suite) control(t testing.TB) *controlled {
	c := &controlled{open: s.b.Open, thawed: make(chan struct{})}
	close(c.thawed)
	t.Cleanup(func() { c.set(live) })
	return c
}

// set switches every session's heartbeats (current and future ones).
func (c *controlled) set(m heartbeatMode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m == c.mode {
		return
	}
	if c.mode == live {
		c.thawed = make(chan struct{})
	}
	c.mode = m
	if m == live {
		close(c.thawed)
	}
}

func (c *controlled) state() (heartbeatMode, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mode, c.thawed
}

// sessions is how many sessions the core has opened through c.
func (c *controlled) sessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.opened)
}

// session returns the i-th session opened through c (the backend's own).
func (c *controlled) session(i int) driver.Driver {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened[i]
}

// Open is the driver.Factory.
func (c *controlled) Open(ctx context.Context, opts driver.Options) (driver.Driver, error) {
	d, err := c.open(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.opened = append(c.opened, d)
	c.mu.Unlock()
	cd := &controlledDriver{Driver: d, c: c, done: make(chan struct{})}
	// Passes the backend's Done on once heartbeats flow again. It ends
	// when the session does (every session is closed, by the core or by
	// the test's cleanup) and the controller is thawed (at cleanup at the
	// latest).
	go func() {
		<-d.Done()
		for {
			mode, thawed := c.state()
			if mode == live {
				close(cd.done)
				return
			}
			<-thawed
		}
	}()
	return cd, nil
}

type controlledDriver struct {
	driver.Driver
	c    *controlled
	done chan struct{}
}

func (d *controlledDriver) Heartbeat(ctx context.Context) error {
	switch mode, _ := d.c.state(); mode {
	case frozen:
		return nil
	case partitioned:
		return fmt.Errorf("drivertest: partitioned from the backend: %w", driver.ErrUnavailable)
	}
	return d.Driver.Heartbeat(ctx)
}

func (d *controlledDriver) Done() <-chan struct{} { return d.done }

// The wrapper passes on what the backend's session tells the core, so the
// core treats it exactly as the bare session: its id, when it began (a
// plugin's first deadline counts from its Open, not its process start),
// and one member's record.

func (d *controlledDriver) SessionID() string {
	if s, ok := d.Driver.(driver.SessionID); ok {
		return s.SessionID()
	}
	return ""
}

func (d *controlledDriver) Began() time.Time {
	if b, ok := d.Driver.(driver.Began); ok {
		return b.Began()
	}
	return time.Time{} // the core then counts from its call to Open
}

func (d *controlledDriver) Member(ctx context.Context, group, member string) (driver.Member, error) {
	if g, ok := d.Driver.(driver.MemberGetter); ok {
		return g.Member(ctx, group, member)
	}
	ms, err := d.Driver.Members(ctx, group)
	if err != nil {
		return driver.Member{}, err
	}
	for _, m := range ms {
		if m.ID == member {
			return m, nil
		}
	}
	return driver.Member{}, fmt.Errorf("drivertest: member %q of %q: %w", member, group, driver.ErrNotMember)
}

// recorder is a factory that records every name that reaches the backend,
// to prove that invalid names are refused before it.
type recorder struct {
	open driver.Factory

	mu    sync.Mutex
	opens int
	names []string
}

func (r *recorder) Open(ctx context.Context, opts driver.Options) (driver.Driver, error) {
	r.mu.Lock()
	r.opens++
	r.names = append(r.names, opts.Member)
	r.mu.Unlock()
	d, err := r.open(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &recordingDriver{Driver: d, r: r}, nil
}

func (r *recorder) saw(names ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = append(r.names, names...)
}

func (r *recorder) seen() (opens int, names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opens, append([]string(nil), r.names...)
}

type recordingDriver struct {
	driver.Driver
	r *recorder
}

func (d *recordingDriver) CreateGroup(ctx context.Context, group string) error {
	d.r.saw(group)
	return d.Driver.CreateGroup(ctx, group)
}

func (d *recordingDriver) DeleteGroup(ctx context.Context, group string) error {
	d.r.saw(group)
	return d.Driver.DeleteGroup(ctx, group)
}

func (d *recordingDriver) Join(ctx context.Context, group string, caps []byte) error {
	d.r.saw(group)
	return d.Driver.Join(ctx, group, caps)
}

func (d *recordingDriver) Leave(ctx context.Context, group string) error {
	d.r.saw(group)
	return d.Driver.Leave(ctx, group)
}

func (d *recordingDriver) Members(ctx context.Context, group string) ([]driver.Member, error) {
	d.r.saw(group)
	return d.Driver.Members(ctx, group)
}

func (d *recordingDriver) SetCapabilities(ctx context.Context, group string, caps []byte) error {
	d.r.saw(group)
	return d.Driver.SetCapabilities(ctx, group, caps)
}

func (d *recordingDriver) SetForcedDown(ctx context.Context, group, member string, down bool) error {
	d.r.saw(group, member)
	return d.Driver.SetForcedDown(ctx, group, member, down)
}

func (d *recordingDriver) TryLock(ctx context.Context, name string) (driver.Token, error) {
	d.r.saw(name)
	return d.Driver.TryLock(ctx, name)
}

func (d *recordingDriver) Unlock(ctx context.Context, name string, tok driver.Token) error {
	d.r.saw(name)
	return d.Driver.Unlock(ctx, name, tok)
}

func (d *recordingDriver) LockHolder(ctx context.Context, name string) (driver.LockHolder, error) {
	d.r.saw(name)
	return d.Driver.LockHolder(ctx, name)
}

func (d *recordingDriver) BreakLock(ctx context.Context, name string) error {
	d.r.saw(name)
	return d.Driver.BreakLock(ctx, name)
}
