package serve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

var (
	errPluginSide = errors.New("serve: the plugin side has no client")
	errNoSession  = fmt.Errorf("plugin: no session open: %w", driver.ErrClosed)
	// errUnknownCall answers a Call this plugin does not know (a newer host).
	errUnknownCall = fmt.Errorf("plugin: unknown call: %w", driver.ErrNotSupported)
	errOpen        = errors.New("plugin: a session is already open; a plugin serves one")
)

// server is the Driver service over the plugin's one session.
type server struct {
	proto.UnimplementedDriverServer

	factory driver.Factory
	log     hclog.Logger

	// beat is when the host last sent Heartbeat (or Open), in nanoseconds
	// since start: the watchdog ends the session when it is a TTL old.
	start time.Time
	beat  atomic.Int64

	mu       sync.Mutex
	opening  bool
	drv      driver.Driver
	features *proto.FeaturesResponse
	ended    chan struct{} // closed when the session ends, for any reason
	reason   string        // why it ended, once ended is closed
	lost     error         // set when it ended other than by Close: calls return it
	stop     context.CancelFunc
}

func newServer(factory driver.Factory, log hclog.Logger) *server {
	return &server{factory: factory, log: log, start: time.Now(), ended: make(chan struct{})}
}

func (s *server) Open(ctx context.Context, req *proto.OpenRequest) (*proto.OpenResponse, error) {
	s.mu.Lock()
	if s.opening || s.drv != nil {
		s.mu.Unlock()
		return nil, proto.ToStatus(errOpen)
	}
	s.opening = true
	s.mu.Unlock()

	opts := driver.Options{
		URL:         req.GetUrl(),
		Member:      req.GetMember(),
		Instance:    req.GetInstance(),
		TTL:         time.Duration(req.GetTtlNanos()),
		DialTimeout: time.Duration(req.GetDialTimeoutNanos()),
		Logger:      zap.New(newHclogCore(s.log.Named("driver"))),
	}
	if pid, err := strconv.Atoi(os.Getenv(proto.EnvHostPID)); err == nil && pid > 0 {
		opts.OwnerPID = pid // the host holds what this session takes
	}
	// A backend may keep the context it was opened with; the RPC's ends
	// with the call, so cancel only while Open runs.
	octx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopCancel := context.AfterFunc(ctx, cancel)
	drv, err := s.factory(octx, opts)
	stopCancel()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.opening = false
	if err != nil {
		cancel()
		// Debug: the error is returned, and the host reports it once.
		s.log.Debug("open failed", "error", err)
		return nil, proto.ToStatus(err)
	}
	s.drv = drv
	s.features = featuresOf(drv)
	s.stop = cancel
	s.beat.Store(int64(time.Since(s.start)))
	go s.watch(octx, drv, opts.TTL)
	s.log.Debug("session open", "member", opts.Member, "instance", opts.Instance,
		"url", driver.Redact(opts.URL), "ttl", opts.TTL.String())
	var id string
	if sid, ok := drv.(driver.SessionID); ok {
		id = sid.SessionID()
	}
	return &proto.OpenResponse{Features: s.features, SessionId: id}, nil
}

func featuresOf(d driver.Driver) *proto.FeaturesResponse {
	_, w := d.(driver.Watcher)
	_, l := d.(driver.LockWaiter)
	_, m := d.(driver.MemberGetter)
	_, k := d.(driver.KnownMemberLister)
	return &proto.FeaturesResponse{Watcher: w, LockWaiter: l, MemberGetter: m, KnownMemberLister: k}
}

// watch ends the session when the backend does, or when the host has not
// sent a Heartbeat for ttl: liveness must reflect the host, not the plugin.
func (s *server) watch(ctx context.Context, drv driver.Driver, ttl time.Duration) {
	var timeout <-chan time.Time
	var t *time.Timer
	if ttl > 0 {
		t = time.NewTimer(ttl)
		defer t.Stop()
		timeout = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-drv.Done():
			s.end("the backend ended the session")
			return
		case <-timeout:
			idle := time.Since(s.start) - time.Duration(s.beat.Load())
			if idle < ttl {
				t.Reset(ttl - idle)
				continue
			}
			s.end(fmt.Sprintf("no heartbeat from the host for %v", idle.Round(time.Millisecond)))
			return
		}
	}
}

// end ends the session other than by Close, closing it on the backend so
// that nothing joined or locked outlives the host's attention.
//
// Calls fail at once, but the host hears of the end (the event stream) only
// once the backend session is closed: by then its records are gone.
func (s *server) end(reason string) {
	s.mu.Lock()
	select {
	case <-s.ended:
		s.mu.Unlock()
		return
	default:
	}
	if s.lost != nil { // another end is closing it
		s.mu.Unlock()
		return
	}
	s.lost = fmt.Errorf("plugin: %w: %s", driver.ErrSessionLost, reason)
	drv := s.drv
	s.mu.Unlock()

	s.log.Warn("session ended", "reason", reason)
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	if err := drv.Close(ctx); err != nil {
		s.log.Warn("closing the ended session", "error", err)
	}
	cancel()
	s.mu.Lock()
	s.markEnded(reason)
	s.mu.Unlock()
}

// shutdown closes the session, if any, because the process is exiting.
func (s *server) shutdown(ctx context.Context, why string) {
	s.mu.Lock()
	drv := s.drv
	s.markEnded("plugin exiting: " + why)
	stop := s.stop
	s.mu.Unlock()
	if drv == nil {
		return
	}
	if stop != nil {
		stop()
	}
	if err := drv.Close(ctx); err != nil {
		s.log.Warn("closing the session", "error", err)
	}
}

// markEnded closes ended with reason unless it is closed. s.mu is held.
func (s *server) markEnded(reason string) {
	select {
	case <-s.ended:
	default:
		s.reason = reason
		close(s.ended)
	}
}

// session returns the open session, or the error every call gets instead.
func (s *server) session() (driver.Driver, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost != nil {
		return nil, s.lost
	}
	if s.drv == nil {
		return nil, errNoSession
	}
	return s.drv, nil
}

// status maps a driver error for the wire. A call that raced with the
// watchdog gets the reason the session was lost, not "closed".
func (s *server) status(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, driver.ErrClosed) {
		s.mu.Lock()
		if s.lost != nil {
			err = s.lost
		}
		s.mu.Unlock()
	}
	return proto.ToStatus(err)
}

func (s *server) Features(context.Context, *proto.Empty) (*proto.FeaturesResponse, error) {
	if _, err := s.session(); err != nil {
		return nil, s.status(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.features, nil
}

func (s *server) Events(_ *proto.Empty, stream proto.Driver_EventsServer) error {
	s.mu.Lock()
	open := s.drv != nil
	ended := s.ended
	s.mu.Unlock()
	if !open {
		return s.status(errNoSession)
	}
	select {
	case <-stream.Context().Done():
		return nil
	case <-ended:
	}
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	return stream.Send(&proto.SessionEvent{Type: proto.SessionEvent_TYPE_SESSION_ENDED, Reason: reason})
}

var empty = &proto.Empty{}

func (s *server) Heartbeat(ctx context.Context, _ *proto.Empty) (*proto.Empty, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	s.beat.Store(int64(time.Since(s.start)))
	return empty, s.status(drv.Heartbeat(ctx))
}

func (s *server) Close(ctx context.Context, _ *proto.Empty) (*proto.Empty, error) {
	s.mu.Lock()
	drv := s.drv
	lost := s.lost != nil
	s.markEnded("closed by the host")
	stop := s.stop
	s.mu.Unlock()
	if drv == nil {
		return empty, nil
	}
	if stop != nil {
		stop()
	}
	err := drv.Close(ctx)
	if lost {
		return empty, nil // closed already when it was lost
	}
	return empty, s.status(err)
}

func (s *server) CreateGroup(ctx context.Context, req *proto.GroupRequest) (*proto.Empty, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	return empty, s.status(drv.CreateGroup(ctx, req.GetGroup()))
}

func (s *server) DeleteGroup(ctx context.Context, req *proto.GroupRequest) (*proto.Empty, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	return empty, s.status(drv.DeleteGroup(ctx, req.GetGroup()))
}

func (s *server) Groups(ctx context.Context, _ *proto.Empty) (*proto.GroupsResponse, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	groups, err := drv.Groups(ctx)
	if err != nil {
		return nil, s.status(err)
	}
	return &proto.GroupsResponse{Groups: groups}, nil
}

func (s *server) Join(ctx context.Context, req *proto.CapabilitiesRequest) (*proto.Empty, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	return empty, s.status(drv.Join(ctx, req.GetGroup(), req.GetCapabilities()))
}

func (s *server) Leave(ctx context.Context, req *proto.GroupRequest) (*proto.Empty, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	return empty, s.status(drv.Leave(ctx, req.GetGroup()))
}

func (s *server) Members(ctx context.Context, req *proto.GroupRequest) (*proto.MembersResponse, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	var members []driver.Member
	if l, ok := drv.(driver.StateLister); ok && req.GetWithoutUpdatedAt() {
		members, err = l.MemberStates(ctx, req.GetGroup())
	} else {
		members, err = drv.Members(ctx, req.GetGroup())
	}
	if err != nil {
		return nil, s.status(err)
	}
	out := make([]*proto.Member, len(members))
	for i, m := range members {
		out[i] = proto.FromMember(m)
	}
	return &proto.MembersResponse{Members: out}, nil
}

func (s *server) SetCapabilities(ctx context.Context, req *proto.CapabilitiesRequest) (*proto.Empty, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	return empty, s.status(drv.SetCapabilities(ctx, req.GetGroup(), req.GetCapabilities()))
}

func (s *server) SetForcedDown(ctx context.Context, req *proto.ForcedDownRequest) (*proto.Empty, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	return empty, s.status(drv.SetForcedDown(ctx, req.GetGroup(), req.GetMember(), req.GetDown()))
}

func (s *server) TryLock(ctx context.Context, req *proto.LockRequest) (*proto.TokenResponse, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	tok, err := drv.TryLock(ctx, req.GetName())
	if err != nil {
		return nil, s.status(err)
	}
	return &proto.TokenResponse{Token: uint64(tok)}, nil
}

func (s *server) Unlock(ctx context.Context, req *proto.UnlockRequest) (*proto.Empty, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	return empty, s.status(drv.Unlock(ctx, req.GetName(), driver.Token(req.GetToken())))
}

func (s *server) LockHolder(ctx context.Context, req *proto.LockRequest) (*proto.LockHolderResponse, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	h, err := drv.LockHolder(ctx, req.GetName())
	if err != nil {
		return nil, s.status(err)
	}
	return &proto.LockHolderResponse{Member: h.Member, Token: uint64(h.Token), Session: h.Session}, nil
}

func (s *server) BreakLock(ctx context.Context, req *proto.LockRequest) (*proto.Empty, error) {
	drv, err := s.session()
	if err != nil {
		return nil, s.status(err)
	}
	return empty, s.status(drv.BreakLock(ctx, req.GetName()))
}
