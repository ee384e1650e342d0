package zookeeper

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/driver"
)

func init() {
	driver.Register("zookeeper", Open)
	driver.Register("kazoo", Open)
}

const backend = "zookeeper"

// session is one muster session: one ZooKeeper session.
type session struct {
	cfg      config
	conn     *zk.Conn
	acl      []zk.ACL
	member   string
	instance string
	ttl      time.Duration
	log      *zap.Logger
	zkID     int64
	id       string // SessionID: zk session id + random

	// paths
	ns, internal, recPath, instPath string

	recMu sync.Mutex
	owned map[string]bool // ephemeral paths (and lock dirs "lock:<dir>") this session may own

	lastBeat atomic.Int64 // unix nanos of the last Heartbeat call (or Open)
	done     chan struct{}
	endOnce  sync.Once
	closed   atomic.Bool
	lost     atomic.Bool
	lostWhy  atomic.Value // string
	kick     chan string
	calls    sync.WaitGroup
	stop     chan struct{}
	loopDone chan struct{}

	lockMu sync.Mutex
	held   map[lockKey]string // (name, token) -> node path
}

type lockKey struct {
	name  string
	token driver.Token
}

// record is the data of a session record.
type record struct {
	Member   string   `json:"member"`
	Instance string   `json:"instance,omitempty"`
	Session  string   `json:"session"`
	Owned    []string `json:"owned,omitempty"`
}

// Open opens a session (a ZooKeeper session) on the ensemble the URL names.
func Open(ctx context.Context, opts driver.Options) (driver.Driver, error) {
	cfg, err := parseURL(opts.URL)
	if err != nil {
		return nil, driver.Unavailable(backend, driver.Redact(opts.URL), err)
	}
	if opts.TTL <= 0 {
		return nil, driver.Errorf(backend, "open", cfg.where, fmt.Errorf("TTL %v must be positive", opts.TTL))
	}
	dial := opts.DialTimeout
	if cfg.timeout > 0 && (dial <= 0 || cfg.timeout < dial) {
		dial = cfg.timeout
	}
	if dial <= 0 {
		dial = defaultTimeout
	}
	// Answer a little before the caller's deadline, so an error that says
	// why reaches it (through a plugin, too) instead of its own timeout.
	// Half the dial timeout: through a plugin, starting the process takes
	// part of the caller's budget too.
	deadline := time.Now().Add(dial / 2)
	if d, ok := ctx.Deadline(); ok {
		if d = d.Add(-min(300*time.Millisecond, time.Until(d)/5)); d.Before(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	s := &session{cfg: cfg, member: opts.Member, instance: opts.Instance, ttl: opts.TTL, log: opts.Logger,
		owned: map[string]bool{}, done: make(chan struct{}), kick: make(chan string, 1),
		stop: make(chan struct{}), loopDone: make(chan struct{}), held: map[lockKey]string{}}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.ns = cfg.chroot + "/" + cfg.namespace
	s.internal = cfg.chroot + "/muster/" + cfg.namespace
	if cfg.hasAuth {
		s.acl = zk.DigestACL(zk.PermAll, cfg.user, cfg.pass)
	} else {
		s.acl = zk.WorldACL(zk.PermAll)
	}

	var mu sync.Mutex
	var lastDial error
	hasSession := make(chan struct{})
	var once sync.Once
	var expired atomic.Bool
	var negotiated time.Duration
	var connPtr atomic.Pointer[zk.Conn]
	dialer := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		if expired.Load() {
			return nil, errors.New("session ended")
		}
		c, err := net.DialTimeout(network, addr, timeout)
		if err != nil {
			mu.Lock()
			lastDial = err
			mu.Unlock()
		}
		return c, err
	}
	callback := func(ev zk.Event) {
		if ev.Type != zk.EventSession {
			return
		}
		switch ev.State {
		case zk.StateHasSession:
			once.Do(func() {
				negotiated = negotiatedTimeout(connPtr.Load())
				close(hasSession)
			})
		case zk.StateExpired:
			// Never let the client open a new session under this Driver.
			expired.Store(true)
			s.signal("ZooKeeper expired the session")
		}
	}
	conn, _, err := zk.Connect(cfg.hosts, opts.TTL, zk.WithDialer(dialer), zk.WithEventCallback(callback),
		zk.WithLogger(zapLogger{s.log}), zk.WithLogInfo(false))
	if err != nil {
		return nil, driver.Unavailable(backend, cfg.where, err)
	}
	s.conn = conn
	connPtr.Store(conn)
	select {
	case <-hasSession:
	case <-ctx.Done():
		// Close takes up to a second on a connection that never was:
		// answer now; its goroutines end with it.
		go conn.Close()
		mu.Lock()
		why := lastDial
		mu.Unlock()
		if why == nil {
			why = ctx.Err()
		}
		return nil, driver.Unavailable(backend, cfg.where, fmt.Errorf("no ZooKeeper session within %v: %v", dial, why))
	}
	if negotiated > 0 && (negotiated > opts.TTL*3/2 || negotiated < opts.TTL/2) {
		conn.Close()
		return nil, driver.Errorf(backend, "open", cfg.where, fmt.Errorf(
			"the ensemble granted a session timeout of %v for member TTL %v: ZooKeeper allows "+
				"minSessionTimeout..maxSessionTimeout (2..20 × tickTime by default); pick a TTL in that range or change the ensemble's settings",
			negotiated, opts.TTL))
	}
	if err := s.setup(ctx, opts); err != nil {
		conn.Close()
		return nil, err
	}
	go s.loop()
	return s, nil
}

// setup checks the negotiated timeout, authenticates, creates the session
// record and ends earlier sessions of the same instance.
func (s *session) setup(ctx context.Context, opts driver.Options) error {
	fail := func(err error) error {
		return driver.Unavailable(backend, s.cfg.where, err)
	}
	s.zkID = s.conn.SessionID()
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	s.id = fmt.Sprintf("%016x%s", uint64(s.zkID), hex.EncodeToString(rnd[:]))
	if s.cfg.hasAuth {
		if err := s.do(ctx, func() error { return s.conn.AddAuth("digest", []byte(s.cfg.user+":"+s.cfg.pass)) }); err != nil {
			return fail(fmt.Errorf("digest auth: %w", err))
		}
	}
	// Open's round trips count against the first TTL (the core counts it
	// from before the Open call): the session record and the instance
	// record are created in one multi-op while the namespace is checked, and
	// parents are created only the first time a namespace is used.
	s.recPath = fmt.Sprintf("%s/sessions/%016x", s.internal, uint64(s.zkID))
	if s.instance != "" {
		sum := sha256.Sum256([]byte(s.instance))
		s.instPath = s.internal + "/instances/" + hex.EncodeToString(sum[:16])
	}
	nsErr := make(chan error, 1)
	go func() { nsErr <- s.ensure(ctx, s.ns) }()
	data, _ := json.Marshal(record{Member: s.member, Instance: s.instance, Session: s.id})
	recOp := &zk.CreateRequest{Path: s.recPath, Data: data, Acl: s.acl, Flags: zk.FlagEphemeral}
	instOp := &zk.CreateRequest{Path: s.instPath, Data: []byte(s.recPath), Acl: s.acl, Flags: zk.FlagEphemeral}
	taken := false // the instance record is ours already
	err := s.do(ctx, func() error {
		if s.instance == "" {
			_, err := s.conn.Create(s.recPath, data, zk.FlagEphemeral, s.acl)
			return err
		}
		_, err := s.conn.Multi(recOp, instOp)
		return err
	})
	if err == nil {
		taken = s.instance != ""
	} else {
		// Atomic: nothing was created. The slow path: parents, then the
		// record alone, then the instance (which may end an earlier session).
		err = s.do(ctx, func() error {
			_, err := s.conn.Create(s.recPath, data, zk.FlagEphemeral, s.acl)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			if err = s.ensure(ctx, s.internal+"/sessions"); err != nil {
				<-nsErr
				return fail(err)
			}
			err = s.do(ctx, func() error {
				_, err := s.conn.Create(s.recPath, data, zk.FlagEphemeral, s.acl)
				return err
			})
		}
	}
	if nerr := <-nsErr; err == nil && nerr != nil {
		err = nerr
	}
	if err != nil {
		return fail(fmt.Errorf("create session record: %w", explain(err)))
	}
	s.lastBeat.Store(time.Now().UnixNano())
	if s.instance != "" && !taken {
		if err := s.takeOver(ctx); err != nil {
			return fail(err)
		}
	}
	return nil
}

// explain adds a hint to ZooKeeper's permission errors.
func explain(err error) error {
	if errors.Is(err, zk.ErrNoAuth) {
		return fmt.Errorf("%w (wrong or missing credentials for this data: the URL's user:password must match the one that created it)", err)
	}
	return err
}

// ensure creates p and its parents (persistent), as tooz's ensure_path.
func (s *session) ensure(ctx context.Context, p string) error {
	return s.do(ctx, func() error {
		if ok, _, err := s.conn.Exists(p); err != nil || ok {
			return explain(err)
		}
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		cur := ""
		for _, part := range parts {
			cur += "/" + part
			if _, err := s.conn.Create(cur, nil, 0, s.acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return explain(err)
			}
		}
		return nil
	})
}

// signal asks the loop to end the session; it never blocks.
func (s *session) signal(why string) {
	select {
	case s.kick <- why:
	default:
	}
}

// loop ends the session when ZooKeeper did, when it was taken over, or when
// no Heartbeat was called for a TTL: liveness reflects the host's heartbeats,
// not the client's own pings.
func (s *session) loop() {
	defer close(s.loopDone)
	t := time.NewTimer(s.ttl)
	defer t.Stop()
	var instWatch <-chan zk.Event
	if s.instPath != "" {
		if _, _, ch, err := s.conn.GetW(s.instPath); err == nil {
			instWatch = ch
		}
	}
	for {
		select {
		case <-s.stop:
			return
		case why := <-s.kick:
			s.end(why)
			return
		case ev := <-instWatch:
			if ev.Type == zk.EventNodeDeleted {
				s.end("a newer session of the same instance ended it")
				return
			}
			instWatch = nil
			if ev.Type != zk.EventNotWatching {
				if _, _, ch, err := s.conn.GetW(s.instPath); err == nil {
					instWatch = ch
				} else if errors.Is(err, zk.ErrNoNode) {
					s.end("a newer session of the same instance ended it")
					return
				}
			}
		case <-t.C:
			idle := time.Since(time.Unix(0, s.lastBeat.Load()))
			if idle < s.ttl {
				t.Reset(s.ttl - idle)
				continue
			}
			s.end(fmt.Sprintf("no heartbeat from the host for %v", idle.Round(time.Millisecond)))
			return
		}
	}
}

// end ends the session other than by Close: it closes the ZooKeeper
// session (its ephemeral nodes go with it) and signals Done.
func (s *session) end(why string) {
	s.endOnce.Do(func() {
		s.lostWhy.Store(why)
		s.lost.Store(true)
		s.log.Warn("zookeeper session ended", zap.String("reason", why))
		s.conn.Close()
		close(s.done)
	})
}

func (s *session) Done() <-chan struct{} { return s.done }

// SessionID is the id lock records carry: the ZooKeeper session id and a
// random part, as 32 hex digits.
func (s *session) SessionID() string { return s.id }

func (s *session) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	s.endOnce.Do(func() {
		s.conn.Close()
		close(s.done)
	})
	close(s.stop)
	<-s.loopDone
	s.calls.Wait()
	return nil
}

// live checks the session may act.
func (s *session) live(op, name string) error {
	if s.closed.Load() {
		return driver.Errorf(backend, op, name, driver.ErrClosed)
	}
	if s.lost.Load() {
		why, _ := s.lostWhy.Load().(string)
		return driver.Errorf(backend, op, name, fmt.Errorf("%w: %s", driver.ErrSessionLost, why))
	}
	return nil
}

// do runs f (ZooKeeper calls, which take no context) and returns its error,
// or ctx's when ctx ends first; f then finishes in the background, at the
// latest when the connection closes.
func (s *session) do(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return s.unavailable(err)
	}
	errc := make(chan error, 1)
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		errc <- f()
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return s.unavailable(ctx.Err())
	}
}

func (s *session) unavailable(err error) error {
	return fmt.Errorf("%w: no answer from %s in time: %w", driver.ErrUnavailable, s.cfg.where, err)
}

// fail maps a ZooKeeper error of op on name to the SPI's.
func (s *session) fail(op, name string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case s.closed.Load():
		err = driver.ErrClosed
	case errors.Is(err, zk.ErrSessionExpired), errors.Is(err, zk.ErrSessionMoved), s.lost.Load():
		s.signal("ZooKeeper expired the session")
		err = fmt.Errorf("%w: %v", driver.ErrSessionLost, err)
	case errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrNoServer), errors.Is(err, zk.ErrClosing):
		err = fmt.Errorf("%w: %s: %v", driver.ErrUnavailable, s.cfg.where, err)
	case errors.Is(err, zk.ErrInvalidPath):
		err = fmt.Errorf("%w: %v", driver.ErrInvalidName, err)
	case errors.Is(err, zk.ErrNoAuth):
		err = explain(err)
	}
	return driver.Errorf(backend, op, name, err)
}

// Heartbeat renews the session: it rewrites the session record, whose
// mtime (ZooKeeper's clock) is every member's UpdatedAt.
func (s *session) Heartbeat(ctx context.Context) error {
	if err := s.live("heartbeat", s.member); err != nil {
		return err
	}
	// The host is paying attention: that is what keeps the session, even if
	// this write is slow (a failing ensemble ends it by its own timeout).
	s.lastBeat.Store(time.Now().UnixNano())
	err := s.writeRecord(ctx)
	// A dropped connection fails the calls in flight, but the session
	// lives on if the client reconnects in time: the write is idempotent.
	for i := 0; i < 3 && errors.Is(err, zk.ErrConnectionClosed) && ctx.Err() == nil; i++ {
		err = s.writeRecord(ctx)
	}
	if errors.Is(err, zk.ErrNoNode) {
		s.signal("the session record is gone (expired or taken over)")
		return driver.Errorf(backend, "heartbeat", s.member, fmt.Errorf("%w: the session record is gone", driver.ErrSessionLost))
	}
	if err != nil {
		return s.fail("heartbeat", s.member, err)
	}
	if s.lost.Load() {
		return s.live("heartbeat", s.member)
	}
	return nil
}

// writeRecord writes the session record with the current owned list.
func (s *session) writeRecord(ctx context.Context) error {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	data := s.recordLocked("")
	return s.do(ctx, func() error {
		_, err := s.conn.Set(s.recPath, data, -1)
		return err
	})
}

// recordLocked is the session record's data: the owned list, plus also
// when it is not "". recMu must be held.
func (s *session) recordLocked(also string) []byte {
	owned := make([]string, 0, len(s.owned)+1)
	for p := range s.owned {
		owned = append(owned, p)
	}
	if also != "" && !s.owned[also] {
		owned = append(owned, also)
	}
	slices.Sort(owned)
	data, _ := json.Marshal(record{Member: s.member, Instance: s.instance, Session: s.id, Owned: owned})
	return data
}

// own records p as possibly owned, in the session record, before it is
// created, so a newer session of the instance finds it.
func (s *session) own(ctx context.Context, p string) error {
	s.recMu.Lock()
	known := s.owned[p]
	s.owned[p] = true
	s.recMu.Unlock()
	if known {
		return nil
	}
	return s.writeRecord(ctx)
}

func (s *session) disown(p string) {
	s.recMu.Lock()
	delete(s.owned, p)
	s.recMu.Unlock()
}

// createEphemeral creates p only while the session record exists: a session
// that was ended (taken over) creates nothing more.
func (s *session) createEphemeral(ctx context.Context, p string, data []byte, flags int32) (string, error) {
	return s.create(ctx, p, data, flags, &zk.CheckVersionRequest{Path: s.recPath, Version: -1})
}

// createOwned is createEphemeral of a node p that the session record must
// list (a member node), so that a newer session of the instance finds it:
// if the record does not list p yet, the same multi rewrites it with p,
// one request where own and createEphemeral take two.
func (s *session) createOwned(ctx context.Context, p string, data []byte) error {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	if s.owned[p] {
		_, err := s.createEphemeral(ctx, p, data, zk.FlagEphemeral)
		return err
	}
	_, err := s.create(ctx, p, data, zk.FlagEphemeral, &zk.SetDataRequest{Path: s.recPath, Data: s.recordLocked(p), Version: -1})
	// Owned unless ZooKeeper refused the multi: one that may yet land
	// (no answer in time) may create p, and later records must list it.
	if !refused(err) {
		s.owned[p] = true
	}
	return err
}

// createRefusals are the answers with which ZooKeeper refused a create's
// multi (create returns them as they are); ErrSessionExpired is create's
// for a session record that is gone.
var createRefusals = []error{zk.ErrNodeExists, zk.ErrNoNode, zk.ErrNoAuth, zk.ErrInvalidPath, zk.ErrSessionExpired}

// refused says whether err is one of createRefusals: the multi did
// nothing.
func refused(err error) bool {
	return slices.ContainsFunc(createRefusals, func(e error) bool { return errors.Is(err, e) })
}

// create runs first (a check or a rewrite of the session record) and the
// create of p in one multi.
func (s *session) create(ctx context.Context, p string, data []byte, flags int32, first any) (string, error) {
	var out string
	err := s.do(ctx, func() error {
		res, err := s.conn.Multi(first, &zk.CreateRequest{Path: p, Data: data, Acl: s.acl, Flags: flags})
		if err != nil && len(res) == 2 {
			if errors.Is(res[0].Error, zk.ErrNoNode) {
				return zk.ErrSessionExpired // the session record is gone
			}
			for _, known := range createRefusals {
				if errors.Is(res[1].Error, known) {
					return known
				}
			}
		}
		if err == nil && len(res) == 2 {
			out = res[1].String
		}
		return err
	})
	if err != nil {
		return "", err // the call may still be running: do not read out
	}
	return out, nil
}

// negotiatedTimeout reads the session timeout the server granted, which
// go-zookeeper keeps to itself. It runs in the client's goroutine, right
// after the client stored it.
func negotiatedTimeout(c *zk.Conn) time.Duration {
	if c == nil {
		return 0
	}
	f := reflect.ValueOf(c).Elem().FieldByName("sessionTimeoutMs")
	if !f.IsValid() || f.Kind() != reflect.Int32 {
		return 0
	}
	return time.Duration(f.Int()) * time.Millisecond
}

type zapLogger struct{ l *zap.Logger }

func (z zapLogger) Printf(format string, args ...any) {
	z.l.Debug(fmt.Sprintf("zk: "+format, args...))
}
