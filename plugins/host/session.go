package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	plugin "github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

const (
	// closeTimeout bounds the Close RPC when the caller's context has no
	// deadline; killTimeout bounds go-plugin's graceful shutdown.
	closeTimeout = 10 * time.Second
	closeGrace   = time.Second // for Close called with an expired context
	killTimeout  = 3 * time.Second
	// exitGrace is how long a broken event stream waits for the process
	// exit to be reported, for the better reason.
	exitGrace = 200 * time.Millisecond
)

// session is one plugin process serving one driver session.
type session struct {
	scheme   string
	client   *plugin.Client
	proc     *process
	rpc      proto.DriverClient
	health   grpc_health_v1.HealthClient
	log      *zap.Logger
	features *proto.FeaturesResponse
	id       string    // the plugin driver's session id
	began    time.Time // just before the Open RPC: see driver.Began
	started  time.Time
	onEnd    func(lived time.Duration, lost bool)

	bg       context.Context // lives as long as the session; parent of Call streams
	bgCancel context.CancelFunc
	calls    chan *callStream // idle Call streams
	wg       sync.WaitGroup
	done     chan struct{}

	mu     sync.Mutex
	endErr error // nil while live; the session-lost reason, or ErrClosed

	closeOnce sync.Once
	closeErr  error
}

func (f *factory) start(ctx context.Context, opts driver.Options, onEnd func(time.Duration, bool)) (*session, error) {
	path, err := f.binary()
	if err != nil {
		return nil, err
	}
	log := f.logger(opts).With(zap.String("plugin", f.scheme))
	timeout := f.cfg.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	env := []string{
		proto.EnvHostPID + "=" + strconv.Itoa(os.Getpid()),
		proto.EnvLogLevel + "=" + levelName(log),
	}
	var (
		procMu sync.Mutex
		proc   *process
	)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: proto.Handshake,
		Plugins:         plugin.PluginSet{proto.PluginName: grpcPlugin{}},
		RunnerFunc: runnerFunc(path, env, log, func(p *process) {
			procMu.Lock()
			proc = p
			procMu.Unlock()
			if ctx.Err() != nil {
				_ = p.Kill(ctx)
			}
		}),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     timeout,
		Logger:           newZapHclog(log.Named("go-plugin")),
		SyncStdout:       &lineWriter{z: log},
		SyncStderr:       &lineWriter{z: log},
		GRPCDialOptions: []grpc.DialOption{
			// Fixed windows, as the plugin's: no BDP pings (see serve).
			grpc.WithInitialWindowSize(proto.StreamWindow),
			grpc.WithInitialConnWindowSize(proto.ConnWindow),
		},
	})
	// go-plugin's Start ignores ctx: killing the process makes it return.
	stop := context.AfterFunc(ctx, func() {
		procMu.Lock()
		p := proc
		procMu.Unlock()
		if p != nil {
			_ = p.Kill(context.Background())
		}
	})
	cp, err := client.Client()
	stop()
	fail := func(what string, err error) (*session, error) {
		kill(client, proc)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("plugin for scheme %q: %s: %w", f.scheme, what, ctx.Err())
		}
		return nil, fmt.Errorf("plugin for scheme %q: %s %s: %w", f.scheme, what, path, err)
	}
	if err != nil {
		return nil, startError(ctx, f.scheme, path, timeout, err, func() { kill(client, proc) })
	}
	raw, err := cp.Dispense(proto.PluginName)
	if err != nil {
		return fail("dispense", err)
	}
	conn, ok := raw.(*grpc.ClientConn)
	if !ok {
		return fail("dispense", fmt.Errorf("got a %T, not a gRPC connection", raw))
	}
	rpc := proto.NewDriverClient(conn)
	began := time.Now()
	resp, err := rpc.Open(ctx, &proto.OpenRequest{
		Url:              opts.URL,
		Member:           opts.Member,
		Instance:         opts.Instance,
		TtlNanos:         int64(opts.TTL),
		DialTimeoutNanos: int64(opts.DialTimeout),
	})
	if err != nil {
		if perr, ok := proto.FromStatus(err); ok {
			kill(client, proc)
			return nil, driver.Errorf(f.scheme, "open", driver.Redact(opts.URL), perr)
		}
		return fail("open", err)
	}

	bg, cancel := context.WithCancel(context.Background())
	s := &session{
		scheme:   f.scheme,
		client:   client,
		proc:     proc,
		rpc:      rpc,
		health:   grpc_health_v1.NewHealthClient(conn),
		log:      log.With(zap.Int("pid", proc.PID())),
		features: resp.GetFeatures(),
		id:       resp.GetSessionId(),
		began:    began,
		started:  time.Now(),
		onEnd:    onEnd,
		bg:       bg,
		bgCancel: cancel,
		calls:    make(chan *callStream, maxIdleCalls),
		done:     make(chan struct{}),
	}
	events, err := rpc.Events(bg, &proto.Empty{})
	if err != nil {
		cancel()
		return fail("events", err)
	}
	interval, pingTimeout := pingTimes(opts.TTL)
	s.wg.Add(3)
	go s.readEvents(bg, events)
	go s.ping(bg, interval, pingTimeout)
	go s.watchExit(bg)
	s.log.Debug("plugin session open", zap.String("path", path))
	return s, nil
}

// kill stops a plugin that never became a session.
func kill(client *plugin.Client, proc *process) {
	if proc != nil {
		t := time.AfterFunc(killTimeout, func() { _ = proc.Kill(context.Background()) })
		defer t.Stop()
	}
	client.Kill()
}

// pingTimes: ping a few times per TTL, at most every second, and declare
// the plugin dead when one ping goes unanswered for two intervals.
func pingTimes(ttl time.Duration) (interval, timeout time.Duration) {
	interval = time.Second
	if ttl > 0 {
		interval = min(max(ttl/3, 100*time.Millisecond), time.Second)
	}
	return interval, max(2*interval, time.Second)
}

func levelName(log *zap.Logger) string {
	switch l := log.Level(); {
	case l == zapcore.InvalidLevel:
		return "error"
	case l <= zapcore.DebugLevel:
		return "debug"
	case l == zapcore.InfoLevel:
		return "info"
	case l == zapcore.WarnLevel:
		return "warn"
	default:
		return "error"
	}
}

// grpcPlugin hands go-plugin's connection to the plugin to the host.
type grpcPlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (grpcPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("host: the host side serves nothing")
}

func (grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return c, nil
}

// lose ends the session because the plugin died, stopped answering, or
// ended it; the first reason wins. The process is killed at once: a
// session nobody can reach must not linger in a frozen plugin.
func (s *session) lose(reason string) {
	s.mu.Lock()
	if s.endErr != nil {
		s.mu.Unlock()
		return
	}
	s.endErr = fmt.Errorf("%w: %s", driver.ErrSessionLost, reason)
	s.mu.Unlock()

	s.log.Warn("plugin session lost", zap.String("reason", reason))
	close(s.done)
	s.bgCancel()
	_ = s.proc.Kill(context.Background())
	if s.onEnd != nil {
		s.onEnd(time.Since(s.started), true)
	}
}

func (s *session) watchExit(bg context.Context) {
	defer s.wg.Done()
	select {
	case <-bg.Done():
	case <-s.proc.Exited():
		s.lose(s.proc.ExitReason())
	}
}

func (s *session) ping(bg context.Context, interval, timeout time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	req := &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName}
	for {
		select {
		case <-bg.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(bg, timeout)
		_, err := s.health.Check(ctx, req)
		cancel()
		if err != nil {
			if bg.Err() == nil {
				s.lose("plugin stopped answering pings: " + status.Convert(err).Message())
			}
			return
		}
	}
}

func (s *session) readEvents(bg context.Context, events proto.Driver_EventsClient) {
	defer s.wg.Done()
	for {
		ev, err := events.Recv()
		if err != nil {
			if bg.Err() != nil {
				return
			}
			t := time.NewTimer(exitGrace)
			defer t.Stop()
			select {
			case <-s.proc.Exited():
				s.lose(s.proc.ExitReason())
			case <-t.C:
				s.lose("plugin event stream failed: " + status.Convert(err).Message())
			case <-bg.Done():
			}
			return
		}
		if ev.GetType() == proto.SessionEvent_TYPE_SESSION_ENDED {
			s.lose("the plugin ended the session: " + ev.GetReason())
			return
		}
	}
}

// ended returns nil while the session is live, else why it is not.
func (s *session) ended() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endErr
}

func (s *session) opErr(op, name string, err error) error {
	return &driver.OpError{Backend: s.scheme, Op: op, Name: name, Err: err}
}

// result turns an RPC error into the driver error the caller gets: the
// plugin's own error rebuilt, or for a failed transport ErrSessionLost.
func (s *session) result(ctx context.Context, op, name string, err error) error {
	if err == nil {
		return nil
	}
	if perr, ok := proto.FromStatus(err); ok {
		return s.pluginErr(op, name, perr)
	}
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded:
		if err := callerGaveUp(ctx); err != nil {
			return s.opErr(op, name, err)
		}
	case codes.Unimplemented:
		return s.opErr(op, name, fmt.Errorf("%w: the plugin does not implement it", driver.ErrNotSupported))
	}
	if e := s.ended(); e != nil {
		return s.opErr(op, name, e)
	}
	s.lose("plugin call failed: " + status.Convert(err).Message())
	return s.opErr(op, name, s.ended())
}

// pluginErr is the driver error for an error the plugin returned.
// callerGaveUp is ctx's error if the caller's context has ended, or its
// deadline has passed. The plugin's gRPC server resets a call at the
// deadline the host sent with it (RST_STREAM CANCEL); on a loaded machine
// that reset can arrive before ctx's own timer has fired, and it is the
// caller's timeout all the same, not a dead plugin.
func callerGaveUp(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

func (s *session) pluginErr(op, name string, perr error) error {
	if errors.Is(perr, driver.ErrSessionLost) {
		s.lose("the plugin ended the session: " + perr.Error())
	}
	return driver.Errorf(s.scheme, op, name, perr)
}

// Heartbeat renews the session; the plugin ends it when these stop.
func (s *session) Heartbeat(ctx context.Context) error {
	_, err := s.hot(ctx, "heartbeat", "", &proto.CallRequest{Call: &proto.CallRequest_Heartbeat{Heartbeat: &proto.Empty{}}})
	return err
}

// Done is closed when the session ended: closed, lost by the backend, or
// the plugin died or stopped answering.
func (s *session) Done() <-chan struct{} { return s.done }

// Close closes the session in the plugin, then stops the plugin process
// and waits for it. It is idempotent.
func (s *session) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		lost := s.endErr != nil
		if !lost {
			s.endErr = driver.ErrClosed
		}
		s.mu.Unlock()
		s.bgCancel() // no more pings or events: the plugin is going away

		if !lost {
			// Leaving groups and releasing locks now, not after the TTL, is
			// Close's point: try even with an expired ctx, briefly.
			cctx, cancel := ctx, context.CancelFunc(func() {})
			switch _, has := ctx.Deadline(); {
			case ctx.Err() != nil:
				cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), closeGrace)
			case !has:
				cctx, cancel = context.WithTimeout(ctx, closeTimeout)
			}
			defer cancel()
			_, err := s.rpc.Close(cctx, &proto.Empty{})
			if perr, ok := proto.FromStatus(err); ok {
				if !errors.Is(perr, driver.ErrClosed) && !errors.Is(perr, driver.ErrSessionLost) {
					s.closeErr = driver.Errorf(s.scheme, "close", "", perr)
				}
			} else if err != nil {
				_ = s.proc.Kill(context.Background()) // unresponsive: no graceful exit
			}
		}
		kill(s.client, s.proc)
		s.wg.Wait()
		if !lost {
			close(s.done)
			if s.onEnd != nil {
				s.onEnd(time.Since(s.started), false)
			}
		}
		s.log.Debug("plugin session closed")
	})
	return s.closeErr
}

func (s *session) CreateGroup(ctx context.Context, group string) error {
	if err := s.ended(); err != nil {
		return s.opErr("create group", group, err)
	}
	_, err := s.rpc.CreateGroup(ctx, &proto.GroupRequest{Group: group})
	return s.result(ctx, "create group", group, err)
}

func (s *session) DeleteGroup(ctx context.Context, group string) error {
	if err := s.ended(); err != nil {
		return s.opErr("delete group", group, err)
	}
	_, err := s.rpc.DeleteGroup(ctx, &proto.GroupRequest{Group: group})
	return s.result(ctx, "delete group", group, err)
}

func (s *session) Groups(ctx context.Context) ([]string, error) {
	if err := s.ended(); err != nil {
		return nil, s.opErr("groups", "", err)
	}
	resp, err := s.rpc.Groups(ctx, &proto.Empty{})
	if err != nil {
		return nil, s.result(ctx, "groups", "", err)
	}
	return resp.GetGroups(), nil
}

func (s *session) Join(ctx context.Context, group string, caps []byte) error {
	if err := s.ended(); err != nil {
		return s.opErr("join", group, err)
	}
	_, err := s.rpc.Join(ctx, &proto.CapabilitiesRequest{Group: group, Capabilities: caps})
	return s.result(ctx, "join", group, err)
}

func (s *session) Leave(ctx context.Context, group string) error {
	if err := s.ended(); err != nil {
		return s.opErr("leave", group, err)
	}
	_, err := s.rpc.Leave(ctx, &proto.GroupRequest{Group: group})
	return s.result(ctx, "leave", group, err)
}

func (s *session) Members(ctx context.Context, group string) ([]driver.Member, error) {
	return s.members(ctx, group, false)
}

// MemberStates is Members without the need for UpdatedAt
// (driver.StateLister): the plugin lists cheaper if its driver can, and
// an older plugin, which ignores the flag, answers as Members.
func (s *session) MemberStates(ctx context.Context, group string) ([]driver.Member, error) {
	return s.members(ctx, group, true)
}

func (s *session) members(ctx context.Context, group string, noTimes bool) ([]driver.Member, error) {
	req := &proto.GroupRequest{Group: group, WithoutUpdatedAt: noTimes}
	resp, err := s.hot(ctx, "members", group, &proto.CallRequest{Call: &proto.CallRequest_Members{Members: req}})
	if err != nil {
		return nil, err
	}
	if resp.GetMembers() == nil {
		return nil, s.opErr("members", group, errNoResult)
	}
	ms := resp.GetMembers().GetMembers()
	members := make([]driver.Member, len(ms))
	for i, m := range ms {
		members[i] = m.Driver()
	}
	return members, nil
}

// Member reads one member's record through the plugin when its driver is
// a driver.MemberGetter, and otherwise finds it in the group's listing, as
// the core would: either way the core's IsUp is one call.
func (s *session) Member(ctx context.Context, group, member string) (driver.Member, error) {
	return s.member(ctx, group, member, false)
}

// MemberState is Member without the need for UpdatedAt
// (driver.StateLister), as MemberStates is for Members.
func (s *session) MemberState(ctx context.Context, group, member string) (driver.Member, error) {
	return s.member(ctx, group, member, true)
}

func (s *session) member(ctx context.Context, group, member string, noTimes bool) (driver.Member, error) {
	if !s.features.GetMemberGetter() {
		ms, err := s.members(ctx, group, noTimes)
		if err != nil {
			return driver.Member{}, err
		}
		for _, m := range ms {
			if m.ID == member {
				return m, nil
			}
		}
		return driver.Member{}, s.opErr("member", group+"/"+member, driver.ErrNotMember)
	}
	resp, err := s.hot(ctx, "member", group+"/"+member, &proto.CallRequest{Call: &proto.CallRequest_Member{
		Member: &proto.MemberRequest{Group: group, Member: member, WithoutUpdatedAt: noTimes}}})
	if err != nil {
		return driver.Member{}, err
	}
	if resp.GetMember() == nil {
		return driver.Member{}, s.opErr("member", group+"/"+member, errNoResult)
	}
	return resp.GetMember().Driver(), nil
}

func (s *session) SetCapabilities(ctx context.Context, group string, caps []byte) error {
	if err := s.ended(); err != nil {
		return s.opErr("set capabilities", group, err)
	}
	_, err := s.rpc.SetCapabilities(ctx, &proto.CapabilitiesRequest{Group: group, Capabilities: caps})
	return s.result(ctx, "set capabilities", group, err)
}

func (s *session) SetForcedDown(ctx context.Context, group, member string, down bool) error {
	if err := s.ended(); err != nil {
		return s.opErr("set forced down", group, err)
	}
	_, err := s.rpc.SetForcedDown(ctx, &proto.ForcedDownRequest{Group: group, Member: member, Down: down})
	return s.result(ctx, "set forced down", group, err)
}

func (s *session) TryLock(ctx context.Context, name string) (driver.Token, error) {
	resp, err := s.hot(ctx, "try lock", name, &proto.CallRequest{Call: &proto.CallRequest_TryLock{TryLock: &proto.LockRequest{Name: name}}})
	if err != nil {
		return 0, err
	}
	if resp.GetToken() == nil || resp.GetToken().GetToken() == 0 {
		return 0, s.opErr("try lock", name, errNoResult)
	}
	return driver.Token(resp.GetToken().GetToken()), nil
}

func (s *session) Unlock(ctx context.Context, name string, token driver.Token) error {
	_, err := s.hot(ctx, "unlock", name, &proto.CallRequest{Call: &proto.CallRequest_Unlock{Unlock: &proto.UnlockRequest{Name: name, Token: uint64(token)}}})
	return err
}

func (s *session) LockHolder(ctx context.Context, name string) (driver.LockHolder, error) {
	resp, err := s.hot(ctx, "lock holder", name, &proto.CallRequest{Call: &proto.CallRequest_LockHolder{LockHolder: &proto.LockRequest{Name: name}}})
	if err != nil {
		return driver.LockHolder{}, err
	}
	h := resp.GetLockHolder()
	if h == nil || h.GetToken() == 0 {
		return driver.LockHolder{}, s.opErr("lock holder", name, errNoResult)
	}
	return driver.LockHolder{Member: h.GetMember(), Token: driver.Token(h.GetToken()), Session: h.GetSession()}, nil
}

// SessionID is the plugin driver's session id, as LockHolder reports it.
func (s *session) SessionID() string { return s.id }

// Began is when the Open RPC was sent: the plugin's backend session cannot
// have begun before it, however long the process took to start.
func (s *session) Began() time.Time { return s.began }

// errNoResult is a plugin's answer that carries neither the result asked
// for nor an error: a broken plugin, never a success.
var errNoResult = errors.New("plugin answered with neither a result nor an error")

func (s *session) BreakLock(ctx context.Context, name string) error {
	if err := s.ended(); err != nil {
		return s.opErr("break lock", name, err)
	}
	_, err := s.rpc.BreakLock(ctx, &proto.LockRequest{Name: name})
	return s.result(ctx, "break lock", name, err)
}

// pid is the plugin's process id (see PID).
func (s *session) pid() int { return s.proc.PID() }

// startError says why a plugin did not start, in muster's words: it names
// the handshake a plugin owes its host, and the setting that bounded it.
// stop ends the process (go-plugin's error is read first).
func startError(ctx context.Context, scheme, path string, timeout time.Duration, err error, stop func()) error {
	stop()
	const unrecognized = "Unrecognized remote plugin message: "
	switch msg := err.Error(); {
	case ctx.Err() != nil:
		return fmt.Errorf("plugin for scheme %q: no handshake from %s before the dial timeout ended (backend.dial_timeout): %w", scheme, path, ctx.Err())
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Errorf("plugin for scheme %q: no handshake from %s within %v (plugin start timeout): %w", scheme, path, timeout, err)
	case strings.Contains(msg, unrecognized):
		out := msg[strings.Index(msg, unrecognized)+len(unrecognized):]
		if i := strings.Index(out, "\n"); i >= 0 {
			out = out[:i]
		}
		out, _, _ = strings.Cut(out, "; the plugin may be")
		return fmt.Errorf("plugin for scheme %q: %s is not a muster plugin: it printed %q where the handshake was due (built for another OS or architecture, or not a muster-plugin-* binary?)", scheme, path, out)
	}
	return fmt.Errorf("plugin for scheme %q: start %s: %w", scheme, path, err)
}
