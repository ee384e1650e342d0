package servicegroup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/driver"
)

// ServiceGroup is one member's connection to a backend: a session that the
// core keeps alive. It heartbeats, notices when the backend ends the session
// (expiry, a dead plugin), opens a new one and re-joins every group with the
// same capabilities, and reports locks and leadership held by the old
// session as lost. All methods are safe for concurrent use.
type ServiceGroup struct {
	cfg      Config
	backend  string
	factory  driver.Factory
	log      *zap.Logger
	instance string

	mu      sync.Mutex
	drv     driver.Driver
	renewed chan struct{}      // closed (and replaced) when a new session is up
	joined  map[string]*joined // groups this member is in, to re-join
	locks   map[*Lock]struct{} // locks held through the current session
	closed  bool

	kick chan struct{} // asks the keeper to check the session now
	stop chan struct{}
	wg   sync.WaitGroup
}

type joined struct {
	caps    []byte
	create  bool // joined with JoinOrCreate: re-create the group if it is gone
	pending bool // not (yet) joined through the current session
}

func newServiceGroup(cfg Config, backend string, f driver.Factory) *ServiceGroup {
	return &ServiceGroup{
		cfg:      cfg,
		backend:  backend,
		factory:  f,
		log:      cfg.Logger.With(zap.String("backend", backend), zap.String("member", cfg.Member)),
		instance: randomID(),
		renewed:  make(chan struct{}),
		joined:   map[string]*joined{},
		locks:    map[*Lock]struct{}{},
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
}

// Member is this session's member id.
func (s *ServiceGroup) Member() string { return s.cfg.Member }

// Backend is the backend's scheme ("file", "memory", ...).
func (s *ServiceGroup) Backend() string { return s.backend }

// Config returns the configuration in force, defaults filled in.
func (s *ServiceGroup) Config() Config { return s.cfg }

func (s *ServiceGroup) start() {
	s.wg.Add(1)
	go s.keep()
}

// keep is the session's keeper: it heartbeats every interval and replaces a
// session the backend has ended. A session whose heartbeats have all failed
// for a TTL is treated as lost here too: the backend has expired it by its
// own clock (or will at once), so locks and leadership must be reported lost
// now, not when the backend is reachable again.
func (s *ServiceGroup) keep() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	// lastOK is when the last successful heartbeat was sent: the backend
	// renewed the session no earlier, so it expires no earlier than
	// lastOK+TTL.
	lastOK := time.Now()
	for {
		s.mu.Lock()
		d := s.drv
		s.mu.Unlock()
		beat := func() {
			sent := time.Now()
			err := s.heartbeat(d)
			switch {
			case errors.Is(err, driver.ErrSessionLost) || errors.Is(err, driver.ErrClosed):
				s.recover(d, err.Error())
				lastOK = time.Now()
			case err != nil && time.Since(lastOK) >= s.cfg.MemberTTL:
				s.recover(d, fmt.Sprintf("no heartbeat succeeded for %v (member TTL): %v", time.Since(lastOK).Round(time.Millisecond), err))
				lastOK = time.Now()
			case err != nil:
				// The session lives until its TTL: keep trying.
				s.log.Warn("heartbeat failed", zap.Error(err))
			default:
				lastOK = sent
				s.rejoinPending(d)
				s.checkLocks(d)
			}
		}
		select {
		case <-s.stop:
			return
		case <-d.Done():
			s.recover(d, "backend ended the session")
			lastOK = time.Now()
		case <-s.kick:
			beat()
		case <-t.C:
			beat()
		}
	}
}

func (s *ServiceGroup) heartbeat(d driver.Driver) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HeartbeatInterval)
	defer cancel()
	return d.Heartbeat(ctx)
}

// recover replaces the ended session old: everything held through it is
// lost; a new session is opened (retrying with backoff until Close) and
// re-joins the groups.
func (s *ServiceGroup) recover(old driver.Driver, why string) {
	s.log.Warn("session lost; opening a new one", zap.String("reason", why))
	s.mu.Lock()
	if s.drv != old || s.closed {
		s.mu.Unlock()
		return
	}
	lost := s.locks
	s.locks = map[*Lock]struct{}{}
	for _, j := range s.joined {
		j.pending = true
	}
	s.mu.Unlock()
	for l := range lost {
		l.markLost(old)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
	_ = old.Close(ctx)
	cancel()

	backoff := 50 * time.Millisecond
	for {
		d, err := s.openSession(context.Background())
		if err == nil {
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = d.Close(context.Background())
				return
			}
			s.drv = d
			close(s.renewed)
			s.renewed = make(chan struct{})
			s.mu.Unlock()
			s.rejoinPending(d)
			s.log.Info("session re-opened")
			return
		}
		s.log.Warn("re-opening session failed", zap.Error(err), zap.Duration("retry_in", backoff))
		select {
		case <-s.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.cfg.HeartbeatInterval)
	}
}

// rejoinPending joins d to every group this member was in but has not
// re-joined through d yet. A join refused because the member id is still
// taken (the ghost of the lost session, until its TTL) stays pending and is
// tried again on the next heartbeat.
func (s *ServiceGroup) rejoinPending(d driver.Driver) {
	s.mu.Lock()
	want := map[string]joined{}
	for g, j := range s.joined {
		if j.pending {
			want[g] = *j
		}
	}
	s.mu.Unlock()
	for g, j := range want {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HeartbeatInterval)
		err := d.Join(ctx, g, j.caps)
		if errors.Is(err, driver.ErrGroupNotFound) && j.create {
			if err = d.CreateGroup(ctx, g); err == nil || errors.Is(err, driver.ErrGroupExists) {
				err = d.Join(ctx, g, j.caps)
			}
		}
		cancel()
		switch {
		case err == nil:
			s.log.Info("re-joined group", zap.String("group", g))
			s.mu.Lock()
			if cur, ok := s.joined[g]; ok {
				cur.pending = false
			}
			s.mu.Unlock()
		case errors.Is(err, driver.ErrMemberExists):
			s.log.Warn("member id still taken (the lost session's record?); will retry", zap.String("group", g))
		case errors.Is(err, driver.ErrGroupNotFound):
			s.log.Warn("group deleted while the session was lost; not re-joining", zap.String("group", g))
			s.mu.Lock()
			delete(s.joined, g)
			s.mu.Unlock()
		default:
			s.log.Warn("re-joining group failed; will retry", zap.String("group", g), zap.Error(err))
		}
	}
}

// checkLocks finds locks broken behind this session's back (an operator's
// BreakLock) and reports them lost.
func (s *ServiceGroup) checkLocks(d driver.Driver) {
	s.mu.Lock()
	held := make([]*Lock, 0, len(s.locks))
	for l := range s.locks {
		held = append(held, l)
	}
	s.mu.Unlock()
	for _, l := range held {
		tok, ok := l.heldToken()
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HeartbeatInterval)
		h, err := d.LockHolder(ctx, l.name)
		cancel()
		if errors.Is(err, driver.ErrNotLocked) || (err == nil && h.Token != tok) {
			s.mu.Lock()
			delete(s.locks, l)
			s.mu.Unlock()
			l.markLost(d)
		}
	}
}

// session returns the current session, and a channel closed when a new
// one replaces it.
func (s *ServiceGroup) session() (driver.Driver, chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, fmt.Errorf("servicegroup: %w", driver.ErrClosed)
	}
	return s.drv, s.renewed, nil
}

// do runs op on the current session. If the session turns out to be lost,
// it waits (within ctx) for the keeper to open a new one and runs op once
// more there, so callers see a short delay rather than ErrSessionLost.
func (s *ServiceGroup) do(ctx context.Context, op func(driver.Driver) error) error {
	d, renewed, err := s.session()
	if err != nil {
		return err
	}
	err = op(d)
	if !errors.Is(err, driver.ErrSessionLost) && !errors.Is(err, driver.ErrClosed) {
		return err
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	select {
	case <-renewed:
	case <-ctx.Done():
		return err
	case <-s.stop:
		return fmt.Errorf("servicegroup: %w", driver.ErrClosed)
	}
	d, _, err2 := s.session()
	if err2 != nil {
		return err2
	}
	return op(d)
}

// Close leaves every group and releases every lock at once, then stops the
// keeper. Locks and leaderships still held report Lost. Close is idempotent.
func (s *ServiceGroup) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	d := s.drv
	held := s.locks
	s.locks = map[*Lock]struct{}{}
	s.mu.Unlock()
	s.wg.Wait()
	err := d.Close(ctx)
	for l := range held {
		l.markLost(d)
	}
	return err
}

func errorsIsCtx(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
