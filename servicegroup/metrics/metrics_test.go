package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	_ "github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// value is the value of the series name{labels} in reg (a counter, gauge
// or a histogram's count), -1 if there is none.
func value(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue series
				}
			}
			return number(m)
		}
	}
	return -1
}

func number(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func open(t *testing.T, url, member string, o servicegroup.Observer) *servicegroup.ServiceGroup {
	t.Helper()
	sg, err := servicegroup.Open(context.Background(), servicegroup.Config{URL: url, Member: member, Observer: o,
		HeartbeatInterval: 20 * time.Millisecond, MemberTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sg.Close(context.Background()) })
	return sg
}

// memURL is a memory backend of the test's own, fresh under -count.
func memURL(t *testing.T) string {
	return fmt.Sprintf("memory://%s-%d", t.Name(), time.Now().UnixNano())
}

func registry(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	m := metrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	return m, reg
}

func TestSessionLocksLeadership(t *testing.T) {
	ctx := context.Background()
	m, reg := registry(t)
	url := memURL(t)
	sg := open(t, url, "a", m)
	other := open(t, url, "b", nil)
	if got := value(t, reg, "muster_session_state", "state", "up"); got != 1 {
		t.Fatalf("sessions up = %v, want 1", got)
	}
	if err := sg.JoinOrCreate(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if got := value(t, reg, "muster_backend_call_duration_seconds", "op", "join", "outcome", "ok"); got < 1 {
		t.Fatalf("join calls = %v", got)
	}
	// The timed driver keeps the memory driver's optional interfaces: the
	// core still finds its native watch and its one-member read.
	if _, err := sg.IsUp(ctx, "g", "a"); err != nil {
		t.Fatal(err)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	if _, err := sg.Watch(wctx, "g"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a native watch and a member read timed", func() bool {
		return value(t, reg, "muster_backend_call_duration_seconds", "op", "watch", "outcome", "ok") >= 1 &&
			value(t, reg, "muster_backend_call_duration_seconds", "op", "member", "outcome", "ok") >= 1
	})
	stopWatch()
	eventually(t, "heartbeats observed", func() bool {
		return value(t, reg, "muster_heartbeat_duration_seconds") >= 2
	})

	l := sg.Lock("job")
	if _, err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if got := value(t, reg, "muster_locks_held"); got != 1 {
		t.Fatalf("locks held = %v, want 1", got)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := value(t, reg, "muster_locks_held"); got != 0 {
		t.Fatalf("locks held after release = %v", got)
	}
	if _, err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.BreakLock(ctx, "job"); err != nil {
		t.Fatal(err)
	}
	<-l.Lost()
	if held, lost := value(t, reg, "muster_locks_held"), value(t, reg, "muster_locks_lost_total"); held != 0 || lost != 1 {
		t.Fatalf("after a broken lock: held %v lost %v, want 0 1", held, lost)
	}

	lead, err := sg.Campaign(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if got := value(t, reg, "muster_leader", "group", "g"); got != 1 {
		t.Fatalf("leader = %v, want 1", got)
	}
	if got := value(t, reg, "muster_locks_held"); got != 0 {
		t.Fatalf("an election counted as a lock: %v", got)
	}
	if err := lead.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if got := value(t, reg, "muster_leader", "group", "g"); got != 0 {
		t.Fatalf("leader after resign = %v", got)
	}
	for change, want := range map[string]float64{"won": 1, "resigned": 1} {
		if got := value(t, reg, "muster_leadership_changes_total", "group", "g", "change", change); got != want {
			t.Fatalf("leadership %s = %v, want %v", change, got, want)
		}
	}
	if err := sg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := value(t, reg, "muster_session_state", "state", "up"); got != 0 {
		t.Fatalf("sessions up after close = %v", got)
	}
}

// refusing is a memory session whose heartbeats can be made to fail as if
// the backend had expired it.
type refusing struct {
	driver.Driver
	refuse *sync.Map
}

func (r refusing) Heartbeat(ctx context.Context) error {
	if _, ok := r.refuse.Load(r.Driver); ok {
		return fmt.Errorf("test: %w", driver.ErrSessionLost)
	}
	return r.Driver.Heartbeat(ctx)
}

func TestSessionReopenCounted(t *testing.T) {
	m, reg := registry(t)
	mem, _ := driver.Lookup("memory")
	var refuse sync.Map
	var mu sync.Mutex
	var sessions []driver.Driver
	f := func(ctx context.Context, o driver.Options) (driver.Driver, error) {
		d, err := mem(ctx, o)
		if err == nil {
			mu.Lock()
			sessions = append(sessions, d)
			mu.Unlock()
		}
		return refusing{d, &refuse}, err
	}
	sg, err := servicegroup.OpenDriver(context.Background(), servicegroup.Config{URL: memURL(t), Member: "a", Observer: m,
		HeartbeatInterval: 20 * time.Millisecond, MemberTTL: 2 * time.Second}, "memory", f)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close(context.Background())
	mu.Lock()
	refuse.Store(sessions[0], true)
	mu.Unlock()
	eventually(t, "a re-open counted", func() bool {
		return value(t, reg, "muster_session_reopens_total", "reason", "refused") == 1
	})
	eventually(t, "the new session up", func() bool {
		return value(t, reg, "muster_session_state", "state", "up") == 1 &&
			value(t, reg, "muster_session_state", "state", "lost") == 0
	})
}

func TestFollowSeesGone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	m, reg := registry(t)
	url := memURL(t)
	a := open(t, url, "a", nil)
	b := open(t, url, "b", nil)
	for _, sg := range []*servicegroup.ServiceGroup{a, b} {
		if err := sg.JoinOrCreate(ctx, "g", servicegroup.Capabilities{"n": 1}); err != nil {
			t.Fatal(err)
		}
	}
	rosters := make(chan metrics.Roster, 100)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := metrics.Follow(ctx, a, "g", metrics.FollowOptions{}, func(r metrics.Roster) { rosters <- r }); err != nil {
			t.Error(err)
		}
	}()
	go func() {
		defer wg.Done()
		m.Follow(ctx, a, "g")
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	waitRoster := func(what string, ok func(metrics.Roster) bool) metrics.Roster {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case r := <-rosters:
				if ok(r) {
					return r
				}
			case <-timeout:
				t.Fatalf("no roster with %s", what)
			}
		}
	}
	waitRoster("a and b up", func(r metrics.Roster) bool { up, _, _ := r.Counts(); return up == 2 })
	// The gauges' follower only counts as down a member it saw live.
	eventually(t, "the gauges see a and b", func() bool {
		return value(t, reg, "muster_members", "group", "g", "state", "up") == 2
	})
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r := waitRoster("b gone", func(r metrics.Roster) bool { return len(r.Gone) == 1 })
	if r.Gone[0].ID != "b" || len(r.Members) != 1 || r.Members[0].ID != "a" {
		t.Fatalf("roster %+v", r)
	}
	eventually(t, "the gauges follow", func() bool {
		return value(t, reg, "muster_members", "group", "g", "state", "up") == 1 &&
			value(t, reg, "muster_members", "group", "g", "state", "down") == 1
	})
	b2 := open(t, url, "b", nil)
	if err := b2.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	waitRoster("b back", func(r metrics.Roster) bool { return len(r.Gone) == 0 && len(r.Members) == 2 })
	if err := a.ForceDown(ctx, "g", "b", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "forced down counted", func() bool {
		return value(t, reg, "muster_members", "group", "g", "state", "forced_down") == 1
	})
}

func TestOutcomeOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want servicegroup.Outcome
	}{
		{nil, servicegroup.OutcomeOK},
		{fmt.Errorf("x: %w", driver.ErrLockHeld), servicegroup.OutcomeAnswer},
		{fmt.Errorf("x: %w", driver.ErrSessionLost), servicegroup.OutcomeSessionLost},
		{context.DeadlineExceeded, servicegroup.OutcomeTimeout},
		{errors.New("connection refused"), servicegroup.OutcomeError},
	} {
		if got := servicegroup.OutcomeOf(c.err); got != c.want {
			t.Errorf("OutcomeOf(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
