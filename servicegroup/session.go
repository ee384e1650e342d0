package servicegroup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
	cur     *epoch             // the current session (dead while being replaced)
	renewed chan struct{}      // closed (and replaced) when a new session is up
	joined  map[string]*joined // groups this member is in, to re-join
	closed  bool
	state   SessionState // as last told to cfg.Observer
	lostWhy string       // why the current session was lost

	// groups serializes Join, Leave and re-joins per group, so a join whose
	// caller gave up is resolved before the next one starts.
	groups keyedSem

	kick    chan struct{} // asks the keeper to check the session now
	stop    chan struct{}
	tidying atomic.Bool    // a tidy is under way
	wg      sync.WaitGroup // the keeper and its tidy
	bg      sync.WaitGroup // calls finishing after their caller gave up, and settle's workers
	work    chan func()    // settle's calls, to an idle worker (unbuffered)
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
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		work:     make(chan func()),
	}
}

// Member is this session's member id.
func (s *ServiceGroup) Member() string { return s.cfg.Member }

// Backend is the backend's scheme ("file", "memory", ...).
func (s *ServiceGroup) Backend() string { return s.backend }

// Config returns the configuration in force, defaults filled in.
func (s *ServiceGroup) Config() Config { return s.cfg }

// install makes d, opened at openedAt, the current session. Its deadline
// timer declares it lost locally (see lossMargin) whatever the keeper is
// doing, even blocked in a hung heartbeat.
func (s *ServiceGroup) install(d driver.Driver, openedAt time.Duration) *epoch {
	e := newEpoch(d, openedAt, s.cfg.MemberTTL)
	e.drv = observed(d, s.cfg.Observer)
	s.setState(SessionUp)
	e.timer = time.AfterFunc(time.Duration(e.deadline.Load())-monoNow(), func() {
		if s.kill(e, "no heartbeat succeeded before the session's deadline (member TTL less the safety margin)") {
			s.poke()
		}
	})
	s.cur = e
	return e
}

func (s *ServiceGroup) start() {
	s.wg.Add(1)
	go s.keep()
}

func (s *ServiceGroup) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// keep is the session's keeper: it heartbeats every interval and replaces a
// session that is lost: ended by the backend, refused by a heartbeat, or
// past its local deadline.
func (s *ServiceGroup) keep() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		s.mu.Lock()
		e := s.cur
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-e.drv.Done():
			s.recover(e, whyBackendEnded)
		case <-s.kick:
			s.beat(e)
		case <-t.C:
			s.beat(e)
		}
	}
}

// beat renews e once, or replaces it if it is lost.
func (s *ServiceGroup) beat(e *epoch) {
	if s.isDead(e) {
		s.recover(e, "session past its deadline")
		return
	}
	sent := monoNow()
	// A slow heartbeat that succeeds before the deadline still renews: give
	// it until then, not just one interval.
	wait := max(s.cfg.HeartbeatInterval, time.Duration(e.deadline.Load())-sent)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	err := e.drv.Heartbeat(ctx)
	cancel()
	if o := s.cfg.Observer; o != nil {
		o.Heartbeat(monoNow()-sent, err)
	}
	switch {
	case errors.Is(err, driver.ErrSessionLost) || errors.Is(err, driver.ErrClosed):
		s.recover(e, err.Error())
	case err != nil:
		// The session lives until its deadline: keep trying.
		s.log.Warn("heartbeat failed", zap.Error(err))
	case !s.renew(e, sent):
		s.recover(e, "heartbeat answered after the session's deadline")
	default:
		s.tidy(e)
	}
}

// tidy does, after a successful heartbeat, the work that must not delay
// the next one: re-joining pending groups and checking held locks. One
// runs at a time; a heartbeat that finds one under way skips it.
func (s *ServiceGroup) tidy(e *epoch) {
	if !s.tidying.CompareAndSwap(false, true) {
		return
	}
	s.wg.Add(1) // the keeper is in s.wg, so Close's Wait cannot be past it
	go func() {
		defer s.wg.Done()
		defer s.tidying.Store(false)
		s.rejoinPending(e)
		s.checkLocks(e)
	}()
}

// renew moves e's deadline after a heartbeat sent at sent succeeded. A
// dead epoch stays dead.
func (s *ServiceGroup) renew(e *epoch, sent time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.dead {
		return false
	}
	dl := sent + s.cfg.MemberTTL - lossMargin(s.cfg.MemberTTL)
	if dl <= monoNow() {
		return false // the timer fires at once and kills it
	}
	e.deadline.Store(int64(dl))
	e.timer.Reset(dl - monoNow())
	return true
}

// isDead reports whether e is dead or past its deadline (then it kills it).
func (s *ServiceGroup) isDead(e *epoch) bool {
	s.mu.Lock()
	dead := e.dead
	s.mu.Unlock()
	if !dead && e.expired() {
		s.kill(e, "session past its deadline")
		return true
	}
	return dead
}

// kill declares e lost, once: every lock and leadership held through it is
// reported lost now, and groups are marked for re-joining. It reports
// whether this call killed it.
func (s *ServiceGroup) kill(e *epoch, why string) bool {
	s.mu.Lock()
	if e.dead {
		s.mu.Unlock()
		return false
	}
	e.dead = true
	e.timer.Stop()
	held := e.locks
	e.locks = nil
	if s.cur == e && !s.closed {
		for _, j := range s.joined {
			j.pending = true
		}
		s.lostWhy = why
		s.setState(SessionLost)
	}
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		s.log.Warn("session lost", zap.String("reason", why), zap.Int("locks_lost", len(held)))
	}
	for l, tok := range held {
		l.markLost(e, tok)
	}
	return true
}

// recover replaces the lost session old: everything held through it is
// lost; a new session is opened (retrying with backoff until Close) and
// re-joins the groups.
func (s *ServiceGroup) recover(old *epoch, why string) {
	s.kill(old, why)
	s.mu.Lock()
	if s.cur != old || s.closed {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.log.Info("opening a new session", zap.String("reason", why))
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
	_ = old.drv.Close(ctx)
	cancel()

	backoff := 50 * time.Millisecond
	for {
		started := monoNow()
		d, err := s.openSession(context.Background())
		if err == nil {
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = d.Close(context.Background())
				return
			}
			e := s.install(d, began(d, started))
			close(s.renewed)
			s.renewed = make(chan struct{})
			why := s.lostWhy
			s.mu.Unlock()
			if o := s.cfg.Observer; o != nil {
				o.SessionReopened(lossReason(why))
			}
			s.rejoinPending(e)
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

// rejoinPending joins e to every group this member was in but has not
// re-joined through e yet. A join refused because the member id is still
// taken (the ghost of the lost session, until its TTL) stays pending and is
// tried again on the next heartbeat.
func (s *ServiceGroup) rejoinPending(e *epoch) {
	s.mu.Lock()
	var want []string
	for g, j := range s.joined {
		if j.pending {
			want = append(want, g)
		}
	}
	s.mu.Unlock()
	for _, g := range want {
		s.rejoin(e, g)
	}
}

func (s *ServiceGroup) rejoin(e *epoch, g string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HeartbeatInterval)
	defer cancel()
	release, err := s.groups.acquire(ctx, g)
	if err != nil {
		return // a Join or Leave of g is under way: next heartbeat
	}
	defer release()
	s.mu.Lock()
	j, ok := s.joined[g]
	if !ok || !j.pending || e.dead {
		s.mu.Unlock()
		return // left meanwhile, or already re-joined
	}
	caps, create := j.caps, j.create
	s.mu.Unlock()
	err = e.drv.Join(ctx, g, caps)
	if errors.Is(err, driver.ErrGroupNotFound) && create {
		if err = e.drv.CreateGroup(ctx, g); err == nil || errors.Is(err, driver.ErrGroupExists) {
			err = e.drv.Join(ctx, g, caps)
		}
	}
	switch {
	case err == nil:
		s.mu.Lock()
		if cur, ok := s.joined[g]; ok && cur == j {
			cur.pending = e.dead
		}
		s.mu.Unlock()
		s.log.Info("re-joined group", zap.String("group", g))
	case errors.Is(err, driver.ErrMemberExists):
		s.log.Warn("member id still taken (the lost session's record?); will retry", zap.String("group", g))
	case errors.Is(err, driver.ErrGroupNotFound):
		s.log.Warn("group deleted while the session was lost; not re-joining", zap.String("group", g))
		s.mu.Lock()
		if s.joined[g] == j {
			delete(s.joined, g)
		}
		s.mu.Unlock()
	default:
		s.log.Warn("re-joining group failed; will retry", zap.String("group", g), zap.Error(err))
	}
}

// checkLocks finds locks broken behind this session's back (an operator's
// BreakLock) and reports them lost. A holding is compared by token and by
// session, so a release and re-acquire racing this check is never taken
// for a loss.
func (s *ServiceGroup) checkLocks(e *epoch) {
	s.mu.Lock()
	held := make(map[*Lock]Token, len(e.locks))
	for l, tok := range e.locks {
		held[l] = tok
	}
	s.mu.Unlock()
	for l, tok := range held {
		s.checkLock(e, l, tok)
	}
}

func (s *ServiceGroup) checkLock(e *epoch, l *Lock, tok Token) {
	// A Release or re-acquire under way on l decides for itself.
	select {
	case l.sem <- struct{}{}:
		defer func() { <-l.sem }()
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HeartbeatInterval)
	h, err := e.drv.LockHolder(ctx, l.name)
	cancel()
	gone := errors.Is(err, driver.ErrNotLocked) ||
		(err == nil && (h.Token != tok || (h.Session != "" && e.id != "" && h.Session != e.id)))
	if !gone {
		return
	}
	s.mu.Lock()
	cur, ok := e.locks[l]
	if ok && cur == tok {
		delete(e.locks, l)
	}
	s.mu.Unlock()
	if ok && cur == tok {
		l.markLost(e, tok)
	}
}

// current returns the current session, alive or not.
func (s *ServiceGroup) current() (*epoch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("servicegroup: %w", driver.ErrClosed)
	}
	return s.cur, nil
}

// live returns the current session once it is alive, waiting within ctx
// while a lost one is being replaced.
func (s *ServiceGroup) live(ctx context.Context) (*epoch, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, fmt.Errorf("servicegroup: %w", driver.ErrClosed)
		}
		e, renewed := s.cur, s.renewed
		s.mu.Unlock()
		if !s.isDead(e) {
			return e, nil
		}
		s.poke()
		select {
		case <-renewed:
		case <-ctx.Done():
			return nil, fmt.Errorf("servicegroup: %w; no new session yet: %w", driver.ErrSessionLost, ctx.Err())
		case <-s.stop:
			return nil, fmt.Errorf("servicegroup: %w", driver.ErrClosed)
		}
	}
}

func lostSession(err error) bool {
	return errors.Is(err, driver.ErrSessionLost) || errors.Is(err, driver.ErrClosed)
}

// do runs op on the current session. If the session turns out to be lost,
// it waits (within ctx) for the keeper to open a new one and runs op once
// more there, so callers see a short delay rather than ErrSessionLost. op
// must be safe to run twice (a read, or a write of the same value).
func (s *ServiceGroup) do(ctx context.Context, op func(driver.Driver) error) error {
	return s.doOnce(ctx, op, nil)
}

// doOnce is do for an action that is not idempotent: when the first try
// was cut off by a lost session, it may have happened, so a second try that
// finds it done (done: ErrGroupExists after a create, ErrGroupNotFound after
// a delete, ErrNotLocked after a break) reports success: the state the
// caller asked for holds.
func (s *ServiceGroup) doOnce(ctx context.Context, op func(driver.Driver) error, done error) error {
	e, err := s.live(ctx)
	if err != nil {
		return err
	}
	err = op(e.drv)
	// A call on a session that died while it ran (recovery closes the old
	// driver under it: "client is closed") failed because of that, whatever
	// the error says: it is retried on the new session, as a lost one is.
	if !lostSession(err) && (err == nil || !s.isDead(e)) {
		return err
	}
	s.kill(e, err.Error())
	s.poke()
	e, err2 := s.live(ctx)
	if err2 != nil {
		return err2
	}
	err = op(e.drv)
	if done != nil && errors.Is(err, done) {
		return nil
	}
	return err
}

// settle runs call, which changes the backend (a lock taken, a group
// joined), to a known outcome even if the caller gives up first. The call
// runs without the caller's cancellation, bounded by the caller's deadline
// or the dial timeout, whichever is later, on a worker goroutine (run);
// if ctx ends first the caller gets ctx.Err() at once and the call goes on
// in the background. Either way finish gets the call's result exactly once,
// with abandoned set when the caller is gone, and must undo what an
// abandoned success did: a backend never keeps a lock or a membership that
// nobody tracks.
func (s *ServiceGroup) settle(ctx context.Context, call func(context.Context) error, finish func(err error, abandoned bool) error) error {
	if err := ctx.Err(); err != nil {
		return finish(err, false)
	}
	if ctx.Done() == nil { // the caller cannot give up
		return finish(call(ctx), false)
	}
	result := make(chan error)
	gone := make(chan struct{})
	bound := s.cfg.DialTimeout
	if dl, ok := ctx.Deadline(); ok {
		bound = max(bound, time.Until(dl))
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bound)
	s.run(func() {
		err := call(cctx)
		cancel()
		select {
		case result <- err:
		case <-gone:
			_ = finish(err, true)
		}
	})
	select {
	case err := <-result:
		return finish(err, false)
	case <-ctx.Done():
		close(gone)
		return ctx.Err()
	}
}

// workerIdle is how long a settle worker waits for another call before
// it exits.
const workerIdle = 10 * time.Second

// run runs job on an idle worker goroutine, or on a new one if none is
// idle. Workers outlive their job: a goroutine started per call begins on
// a small stack and grows it again through the client's deep call path
// every time (copystack in the CPU profile). plugins/redis's
// BenchmarkCoreLock measured a cancellable context's TryAcquire+Release
// about 20 us slower than a background one's with a goroutine per call,
// and no slower with reused workers. A worker exits once idle for
// workerIdle, or when s closes.
func (s *ServiceGroup) run(job func()) {
	select {
	case s.work <- job:
		return
	default:
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		idle := time.NewTimer(workerIdle)
		defer idle.Stop()
		for {
			job()
			idle.Reset(workerIdle)
			select {
			case job = <-s.work:
			case <-idle.C:
				return
			case <-s.stop:
				return
			}
		}
	}()
}

// background runs f, owned by s, with a context bounded by the dial
// timeout: clean-ups after a caller gave up.
func (s *ServiceGroup) background(f func(ctx context.Context)) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
		defer cancel()
		f(ctx)
	}()
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
	s.setState("")
	close(s.stop)
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	e := s.cur
	s.mu.Unlock()
	s.kill(e, "closed")
	err := e.drv.Close(ctx)
	s.bg.Wait()
	return err
}

func errorsIsCtx(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
