package drivertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Backend describes the backend under test.
type Backend struct {
	// Name is the backend's scheme, as its errors name it ("file", "memory").
	Name string
	// URL returns a fresh, empty namespace on the backend for one test
	// (a new directory, a unique memory store). Every session of that test
	// opens the same URL.
	URL func(t testing.TB) string
	// UnreachableURL is an address that cannot work, for the "opening fails
	// fast" test. Empty skips that test (a failure under CI=true).
	UnreachableURL string
	// Open opens sessions: the backend's in-process factory, or a plugin
	// host's.
	Open driver.Factory
	// Unsupported lists the features the backend cannot offer; the suite
	// checks that their calls return ErrNotSupported instead of testing them.
	Unsupported []Feature
	// Slow runs the slower tests (1,000 groups, ...) even under -short;
	// without -short they always run.
	Slow bool
}

// Feature is an optional part of the SPI a backend may be unable to offer.
type Feature string

// Features a backend may declare unsupported.
const (
	// Locks: TryLock, Unlock, LockHolder and BreakLock. Elections are built
	// on locks in the core, so without locks there is no election either.
	Locks Feature = "locks"
	// BreakLock: an operator freeing a lock that someone else holds.
	BreakLock Feature = "break-lock"
	// Election: Campaign and Leader.
	Election Feature = "election"
	// ForceDown: an operator marking a member down (SetForcedDown).
	ForceDown Feature = "force-down"
)

var features = []Feature{Locks, BreakLock, Election, ForceDown}

// Timings every test uses. The TTL is ten heartbeats, so a session that
// heartbeats never expires even on a loaded machine (a plugin session on a
// 2-core machine at load 10 went 540 ms without a heartbeat answered), and
// short enough that waiting for an expiry costs about a second.
const (
	heartbeat     = 100 * time.Millisecond
	ttl           = time.Second
	watchInterval = 50 * time.Millisecond
	dialTimeout   = 5 * time.Second
	// expiry bounds every wait for a session to expire: generous, so a
	// loaded machine does not fail the suite, never a timing assertion.
	expiry = 10 * ttl
	// soon bounds every wait for something that should happen at once or
	// within a heartbeat or two.
	soon = 5 * time.Second
	// longTTL is for raw sessions that must outlive the test without
	// heartbeating.
	longTTL = time.Minute
)

// suite is one run of the suite against one backend.
type suite struct {
	b           Backend
	unsupported map[Feature]bool
}

// Run runs the conformance suite against b. Its subtests run in parallel,
// each in a namespace of its own.
func Run(t *testing.T, b Backend) {
	if b.Name == "" || b.URL == nil || b.Open == nil {
		t.Fatalf("drivertest: Backend needs Name, URL and Open (got %+v)", b)
	}
	s := &suite{b: b, unsupported: map[Feature]bool{}}
	for _, f := range b.Unsupported {
		if !slices.Contains(features, f) {
			t.Fatalf("drivertest: unknown feature %q (known: %v)", f, features)
		}
		s.unsupported[f] = true
	}
	if s.unsupported[Locks] {
		s.unsupported[Election] = true // the core elects with a lock
		s.unsupported[BreakLock] = true
	}
	groups := []struct {
		name  string
		tests []test
	}{
		{"Session and lifecycle", s.sessionTests()},
		{"Groups", s.groupTests()},
		{"Membership", s.membershipTests()},
		{"Names", s.nameTests()},
		{"Watching", s.watchTests()},
		{"Watch updates", s.updateTests()},
		{"Leader election", s.electionTests()},
		{"Locks", s.lockTests()},
		{"Unsupported features", s.unsupportedTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t)
				})
			}
		})
	}
}

// test is one line of CONFORMANCE.md.
type test struct {
	name string
	run  func(t *testing.T)
}

// supports reports whether the backend offers f. When it does not, the
// caller's test becomes a check that f's calls return ErrNotSupported.
func (s *suite) supports(t *testing.T, f Feature) bool {
	if !s.unsupported[f] {
		return true
	}
	t.Logf("%s declared unsupported: checking ErrNotSupported instead", f)
	s.checkNotSupported(t, f)
	return false
}

// skip skips t, unless CI=true: there nothing may be skipped.
func skip(t *testing.T, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: may not skip: %s", why)
	}
	t.Skip(why)
}

// slow gates a slow test.
func (s *suite) slow(t *testing.T) {
	t.Helper()
	if testing.Short() && !s.b.Slow {
		skip(t, "slow test: run without -short or set Backend.Slow")
	}
}

// option changes the Config of a ServiceGroup a test opens.
type option func(*servicegroup.Config)

func withWatchInterval(d time.Duration) option {
	return func(c *servicegroup.Config) { c.WatchInterval = d }
}

// open opens a ServiceGroup for member on url through the backend's
// factory and closes it when t ends.
func (s *suite) open(t testing.TB, url, member string, opts ...option) *servicegroup.ServiceGroup {
	t.Helper()
	return s.openWith(t, url, member, s.b.Open, opts...)
}

// openWith is open with another session factory (a wrapper of the
// backend's).
func (s *suite) openWith(t testing.TB, url, member string, f driver.Factory, opts ...option) *servicegroup.ServiceGroup {
	t.Helper()
	cfg := servicegroup.Config{
		URL:               url,
		Member:            member,
		HeartbeatInterval: heartbeat,
		MemberTTL:         ttl,
		WatchInterval:     watchInterval,
		DialTimeout:       dialTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), soon)
	defer cancel()
	sg, err := servicegroup.OpenDriver(ctx, cfg, s.b.Name, f)
	if err != nil {
		t.Fatalf("open %s as %q: %v", url, member, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), soon)
		defer cancel()
		if err := sg.Close(ctx); err != nil {
			t.Errorf("close %q: %v", member, err)
		}
	})
	return sg
}

// raw opens a bare session for member on url, with no heartbeat unless the
// test sends one, and closes it when t ends.
func (s *suite) raw(t testing.TB, url, member string, sessionTTL time.Duration) driver.Driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), soon)
	defer cancel()
	d, err := s.b.Open(ctx, s.options(url, member, sessionTTL))
	if err != nil {
		t.Fatalf("open raw session %s as %q: %v", url, member, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), soon)
		defer cancel()
		_ = d.Close(ctx) // the test may have closed it or let it expire
	})
	return d
}

func (s *suite) options(url, member string, sessionTTL time.Duration) driver.Options {
	return driver.Options{
		URL:         url,
		Member:      member,
		Instance:    "drivertest-" + randomID(),
		TTL:         sessionTTL,
		DialTimeout: dialTimeout,
	}
}

// tctx is a context for one test step: it ends with the test, and after
// soon at the latest, so a hung backend fails the test instead of the run.
func tctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 4*soon)
	t.Cleanup(cancel)
	return c
}

// eventually polls cond until it returns nil, and fails t with cond's last
// error if it has not within timeout.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not so within %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// mustCreate creates group through sg.
func mustCreate(t testing.TB, sg *servicegroup.ServiceGroup, group string) {
	t.Helper()
	if err := sg.CreateGroup(tctx(t), group); err != nil {
		t.Fatalf("create group %q: %v", group, err)
	}
}

// ids lists the ids of ms.
func ids(ms []servicegroup.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// rawIDs lists the ids of ms, sorted.
func rawIDs(ms []driver.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	slices.Sort(out)
	return out
}

// membersAre checks that sg lists exactly want (sorted) in group.
func membersAre(sg *servicegroup.ServiceGroup, group string, want ...string) func() error {
	return func() error {
		ms, err := sg.Members(context.Background(), group)
		if err != nil {
			return err
		}
		got := ids(ms)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("members of %q by %q: %q, want %q", group, sg.Member(), got, want)
		}
		return nil
	}
}

// rawMembersAre checks that d lists exactly want in group.
func rawMembersAre(d driver.Driver, group string, want ...string) func() error {
	return func() error {
		ms, err := d.Members(context.Background(), group)
		if err != nil {
			return err
		}
		got := rawIDs(ms)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("members of %q: %q, want %q", group, got, want)
		}
		return nil
	}
}
