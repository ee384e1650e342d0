package serve

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The server is tested in-process here, without gRPC; the real process,
// transport and host are tested in plugins/host.

func open(t *testing.T, factory driver.Factory, dir, member string, ttl time.Duration) *server {
	t.Helper()
	s := newServer(factory, hclog.NewNullLogger())
	_, err := s.Open(context.Background(), &proto.OpenRequest{
		Url: "file://" + dir, Member: member, Instance: member, TtlNanos: int64(ttl),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.shutdown(context.Background(), "test over") })
	return s
}

func observe(t *testing.T, dir string) driver.Driver {
	t.Helper()
	d, err := file.Open(context.Background(), driver.Options{URL: "file://" + dir, Member: "observer", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	if err := d.CreateGroup(context.Background(), "g"); err != nil {
		t.Fatal(err)
	}
	return d
}

func members(t *testing.T, d driver.Driver) int {
	t.Helper()
	ms, err := d.Members(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

func wireErr(err error) error {
	e, _ := proto.FromStatus(err)
	return e
}

// eventStream is the server side of an Events or Watch stream, in memory.
type eventStream[T any] struct {
	grpc.ServerStream
	ctx  context.Context
	sent chan *T
}

func (s *eventStream[T]) Context() context.Context { return s.ctx }
func (s *eventStream[T]) Send(m *T) error {
	s.sent <- m
	return nil
}

func TestWatchdogEndsSession(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	obs := observe(t, dir)
	const ttl = 400 * time.Millisecond
	s := open(t, file.Open, dir, "agent", ttl)
	if _, err := s.Join(ctx, &proto.CapabilitiesRequest{Group: "g"}); err != nil {
		t.Fatal(err)
	}
	// Heartbeats keep it...
	for range 6 {
		time.Sleep(ttl / 3)
		if _, err := s.Heartbeat(ctx, &proto.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := members(t, obs); n != 1 {
		t.Fatalf("%d members while heartbeating", n)
	}
	// ...and their absence ends it, which the event stream reports.
	stream := &eventStream[proto.SessionEvent]{ctx: ctx, sent: make(chan *proto.SessionEvent, 1)}
	errc := make(chan error, 1)
	go func() { errc <- s.Events(&proto.Empty{}, stream) }()
	select {
	case ev := <-stream.sent:
		if ev.GetType() != proto.SessionEvent_TYPE_SESSION_ENDED || !strings.Contains(ev.GetReason(), "no heartbeat") {
			t.Fatalf("event %v", ev)
		}
	case <-time.After(3 * ttl):
		t.Fatal("no session-ended event")
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := members(t, obs); n != 0 {
		t.Fatalf("%d members after the watchdog", n)
	}
	_, err := s.Join(ctx, &proto.CapabilitiesRequest{Group: "g"})
	if err := wireErr(err); !errors.Is(err, driver.ErrSessionLost) || !strings.Contains(err.Error(), "no heartbeat from the host") {
		t.Fatalf("join after the watchdog: %v", err)
	}
	if _, err := s.Close(ctx, &proto.Empty{}); err != nil {
		t.Fatalf("close after the watchdog: %v", err)
	}
}

func TestOneSession(t *testing.T) {
	ctx := context.Background()
	s := newServer(file.Open, hclog.NewNullLogger())
	_, err := s.Join(ctx, &proto.CapabilitiesRequest{Group: "g"})
	if err := wireErr(err); !errors.Is(err, driver.ErrClosed) {
		t.Fatalf("join before open: %v", err)
	}
	s = open(t, file.Open, t.TempDir(), "m", time.Minute)
	_, err = s.Open(ctx, &proto.OpenRequest{Url: "file://" + t.TempDir(), Member: "m", TtlNanos: int64(time.Minute)})
	if err == nil || !strings.Contains(err.Error(), "already open") {
		t.Fatalf("second open: %v", err)
	}
}

func TestOpenError(t *testing.T) {
	s := newServer(file.Open, hclog.NewNullLogger())
	_, err := s.Open(context.Background(), &proto.OpenRequest{Url: "file://relative", TtlNanos: int64(time.Minute)})
	want := "file: open"
	if err := wireErr(err); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("open: %v, want %s...", err, want)
	}
}

func TestCloseEndsEvents(t *testing.T) {
	ctx := context.Background()
	s := open(t, file.Open, t.TempDir(), "m", time.Minute)
	stream := &eventStream[proto.SessionEvent]{ctx: ctx, sent: make(chan *proto.SessionEvent, 1)}
	errc := make(chan error, 1)
	go func() { errc <- s.Events(&proto.Empty{}, stream) }()
	if _, err := s.Close(ctx, &proto.Empty{}); err != nil {
		t.Fatal(err)
	}
	if ev := <-stream.sent; ev.GetReason() != "closed by the host" {
		t.Fatalf("event %v", ev)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateGroup(ctx, &proto.GroupRequest{Group: "g"})
	if err := wireErr(err); !errors.Is(err, driver.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

// watching adds a native watch to the file driver, which has none: it
// reports its own Join and Leave.
type watching struct {
	driver.Driver
	events chan driver.Event
}

func (w *watching) Watch(ctx context.Context, group string) (<-chan driver.Event, <-chan error, error) {
	if group != "g" {
		return nil, nil, driver.Errorf("file", "watch", group, driver.ErrGroupNotFound)
	}
	out := make(chan driver.Event)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				errc <- nil
				return
			case ev := <-w.events:
				out <- ev
			}
		}
	}()
	return out, errc, nil
}

func TestWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan driver.Event, 1)
	factory := func(ctx context.Context, o driver.Options) (driver.Driver, error) {
		d, err := file.Open(ctx, o)
		if err != nil {
			return nil, err
		}
		return &watching{Driver: d, events: events}, nil
	}
	s := open(t, factory, t.TempDir(), "m", time.Minute)
	if f, _ := s.Features(ctx, &proto.Empty{}); !f.GetWatcher() || f.GetLockWaiter() {
		t.Fatalf("features %v", f)
	}
	err := s.Watch(&proto.GroupRequest{Group: "missing"}, &eventStream[proto.WatchEvent]{ctx: ctx})
	if err := wireErr(err); !errors.Is(err, driver.ErrGroupNotFound) {
		t.Fatalf("watch missing: %v", err)
	}
	stream := &eventStream[proto.WatchEvent]{ctx: ctx, sent: make(chan *proto.WatchEvent)}
	errc := make(chan error, 1)
	go func() { errc <- s.Watch(&proto.GroupRequest{Group: "g"}, stream) }()
	if start := <-stream.sent; start.GetType() != proto.WatchEvent_TYPE_UNSPECIFIED {
		t.Fatalf("first message %v, want the start marker", start)
	}
	events <- driver.Event{Type: driver.Joined, Group: "g", Member: "x"}
	got, ok := (<-stream.sent).Driver()
	if !ok || got != (driver.Event{Type: driver.Joined, Group: "g", Member: "x"}) {
		t.Fatalf("event %v", got)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("watch after cancel: %v", err)
	}
}
