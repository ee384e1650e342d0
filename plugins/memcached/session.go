package memcached

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/driver"
)

func init() { driver.Register("memcached", Open) }

const backend = "memcached"

// session is one Driver: one member's session on one memcached (or one
// set of servers sharded by key).
type session struct {
	mc     *memcache.Client
	clock  *clock
	addr   string // for messages
	prefix string
	id     string
	member string
	// instance is the Options.Instance, "" for none.
	instance string
	ttl      time.Duration
	expiry   int32 // seconds, of every key that lives with the session
	log      *zap.Logger

	// memb serializes this session's membership changes with the
	// heartbeat's check of them, so a Leave in flight is never taken for
	// a record lost behind the session's back.
	memb sync.Mutex
	// beat serializes heartbeats: one abandoned by its caller may still
	// be running when the next starts.
	beat sync.Mutex

	mu      sync.Mutex
	closed  bool
	lost    bool
	joined  map[string]bool
	locks   map[string]uint64 // held locks and their tokens
	stamp   int64             // the last stamp written, ns
	renewed time.Time         // when the last successful renewal was sent
	timer   *time.Timer       // fires when renewed+ttl passes
	done    chan struct{}
	// seen maps a member to the session Member last found it joined by,
	// so the next Member reads that session's key in its first round trip.
	seen map[string]string
}

// Open opens a session on the servers named by opts.URL (see parseURL).
// It ends every earlier session of opts.Instance at once.
func Open(ctx context.Context, opts driver.Options) (driver.Driver, error) {
	cfg, err := parseURL(opts.URL)
	if err != nil {
		return nil, driver.Errorf(backend, "open", driver.Redact(opts.URL), err)
	}
	if opts.TTL <= 0 {
		return nil, driver.Errorf(backend, "open", cfg.addr, fmt.Errorf("TTL %v must be positive", opts.TTL))
	}
	if opts.Member != "" {
		if err := driver.ValidateName("member", opts.Member); err != nil {
			return nil, driver.Errorf(backend, "open", opts.Member, err)
		}
	}
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = 5 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok {
		dial = min(dial, max(time.Until(dl), time.Millisecond))
	}
	ioTimeout := cfg.timeout
	if ioTimeout == 0 {
		ioTimeout = min(max(opts.TTL, time.Second), 5*time.Second)
	}
	ss := new(memcache.ServerList)
	if err := ss.SetServers(cfg.servers...); err != nil {
		return nil, driver.Unavailable(backend, cfg.addr, err)
	}
	mc := memcache.NewFromSelector(ss)
	mc.Timeout = min(ioTimeout, dial)
	mc.MaxIdleConns = max(cfg.pool, 2)
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &session{
		mc:       mc,
		clock:    &clock{ss: ss, timeout: min(ioTimeout, dial)},
		addr:     cfg.addr,
		prefix:   cfg.prefix,
		id:       randomHex(16),
		member:   opts.Member,
		instance: opts.Instance,
		ttl:      opts.TTL,
		expiry:   expirySeconds(opts.TTL),
		log:      log.With(zap.String("backend", backend), zap.String("addr", cfg.addr)),
		joined:   map[string]bool{},
		locks:    map[string]uint64{},
		done:     make(chan struct{}),
		seen:     map[string]string{},
	}
	if err := s.start(opts.Instance); err != nil {
		mc.Close()
		s.clock.close()
		if errors.Is(err, driver.ErrInvalidName) {
			return nil, driver.Errorf(backend, "open", cfg.addr, err)
		}
		return nil, driver.Unavailable(backend, cfg.addr, err)
	}
	mc.Timeout = ioTimeout
	s.clock.timeout = ioTimeout
	return s, nil
}

// expirySeconds is the memcached expiry that keeps a key at least ttl
// after it was last set. memcached's clock is a whole-second counter that
// a timer advances about once a second: a key set with expiry n is stored
// to expire at counter+n, and the counter may be close to a second behind
// at the set and is advanced late when the server is starved of CPU. So
// such a key can vanish as soon as n-1-lateness seconds after it was set:
// n is the TTL rounded up, plus two, which keeps the key the whole TTL as
// long as the server's timer is less than a second late.
func expirySeconds(ttl time.Duration) int32 {
	n := (ttl + time.Second - 1) / time.Second
	return int32(min(n+2, 30*24*3600-1))
}

// start writes the session key and ends the instance's earlier session.
func (s *session) start(instance string) error {
	t, err := s.clock.now(s.key(sessionKey(s.id)))
	if err != nil {
		return err
	}
	sent := time.Now()
	s.stamp = t * int64(time.Second)
	rec := sessionRecord{Member: s.member, Stamp: s.stamp, Expiry: s.expiry}
	if err := s.mc.Add(s.item(sessionKey(s.id), mustMarshal(rec), s.expiry)); err != nil {
		return err
	}
	if instance != "" {
		if err := s.takeInstance(instance); err != nil {
			_ = s.mc.Delete(s.key(sessionKey(s.id)))
			return err
		}
	}
	s.renewed = sent
	s.timer = time.AfterFunc(s.ttl, s.watchdog)
	return nil
}

// takeInstance points the instance's key at this session and ends the
// session it named.
func (s *session) takeInstance(instance string) error {
	k := s.key(instanceKey(instance))
	for {
		it, err := s.mc.Get(k)
		if errors.Is(err, memcache.ErrCacheMiss) {
			err = s.mc.Add(&memcache.Item{Key: k, Value: []byte(s.id), Flags: flagRaw})
			if errors.Is(err, memcache.ErrNotStored) {
				continue
			}
			return err
		}
		if err != nil {
			return err
		}
		old := string(it.Value)
		it.Value = []byte(s.id)
		if err := s.mc.CompareAndSwap(it); errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) {
			continue
		} else if err != nil {
			return err
		}
		if old != s.id {
			return s.endSession(old)
		}
		return nil
	}
}

// endSession turns another session's key into a tombstone: from then on
// its memberships read as dead and its locks as free.
func (s *session) endSession(id string) error {
	k := s.key(sessionKey(id))
	for range 10 {
		it, err := s.mc.Get(k)
		if errors.Is(err, memcache.ErrCacheMiss) {
			return nil
		}
		if err != nil {
			return err
		}
		var rec sessionRecord
		if msgpack.Unmarshal(it.Value, &rec) != nil || rec.Ended {
			return nil
		}
		rec.Ended = true
		it.Value = mustMarshal(rec)
		it.Expiration = max(rec.Expiry, 1)
		err = s.mc.CompareAndSwap(it)
		if errors.Is(err, memcache.ErrCASConflict) {
			continue
		}
		if errors.Is(err, memcache.ErrNotStored) || errors.Is(err, memcache.ErrCacheMiss) {
			return nil
		}
		return err
	}
	return fmt.Errorf("ending session %s: too much contention", id)
}

// watchdog ends the session once its TTL has passed since the last
// renewal was sent, by this process's clock. The server keeps the
// session's keys longer than that (see expirySeconds), so the session
// always learns of its loss before anyone else can take what it held.
func (s *session) watchdog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.lost {
		return
	}
	if left := s.ttl - time.Since(s.renewed); left > 0 {
		s.timer.Reset(left)
		return
	}
	s.loseLocked("no renewal within the TTL")
}

// loseLocked ends the session. Caller holds mu.
func (s *session) loseLocked(why string) {
	if s.lost {
		return
	}
	s.lost = true
	if s.timer != nil {
		s.timer.Stop()
	}
	close(s.done)
	s.log.Info("memcached: session lost", zap.String("session", s.id), zap.String("member", s.member), zap.String("reason", why))
}

func (s *session) lose(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseLocked(why)
}

func (s *session) key(k string) string { return s.prefix + k }

func (s *session) item(k string, v []byte, exp int32) *memcache.Item {
	return &memcache.Item{Key: s.key(k), Value: v, Flags: flagMsgpack, Expiration: exp}
}

// begin checks the session may act; lostErr is what a lost one returns.
func (s *session) begin(ctx context.Context, op, name string, lostErr error) error {
	if err := ctx.Err(); err != nil {
		return driver.Errorf(backend, op, name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return driver.Errorf(backend, op, name, driver.ErrClosed)
	case s.lost:
		return driver.Errorf(backend, op, name, lostErr)
	}
	if time.Since(s.renewed) >= s.ttl {
		s.loseLocked("no renewal within the TTL")
		return driver.Errorf(backend, op, name, lostErr)
	}
	return nil
}

// run is the frame of every operation: check (name validity) first, then
// the session's state, then body; errors come back wrapped with op, name
// and, for a failing server, its address.
func (s *session) run(ctx context.Context, op, name string, check, lostErr error, body func() error) error {
	if check != nil {
		return driver.Errorf(backend, op, name, check)
	}
	if err := s.begin(ctx, op, name, lostErr); err != nil {
		return err
	}
	return driver.Errorf(backend, op, name, s.wrap(body()))
}

// wrap names the server in a transport error.
func (s *session) wrap(err error) error {
	if err == nil {
		return nil
	}
	var oe *driver.OpError
	if errors.As(err, &oe) || isSentinel(err) {
		return err
	}
	var ne net.Error
	var ce *memcache.ConnectTimeoutError
	if errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, memcache.ErrNoServers) {
		return fmt.Errorf("%w: %s: %v", driver.ErrUnavailable, s.addr, err)
	}
	return fmt.Errorf("%s: %w", s.addr, err)
}

func isSentinel(err error) bool {
	for _, e := range []error{driver.ErrGroupNotFound, driver.ErrGroupExists, driver.ErrGroupNotEmpty,
		driver.ErrMemberExists, driver.ErrNotMember, driver.ErrSessionLost, driver.ErrClosed,
		driver.ErrLockHeld, driver.ErrNotLocked, driver.ErrInvalidName, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Done is closed when the session has ended: closed, lost by its
// watchdog, or found ended (its key gone or a tombstone) by Heartbeat.
func (s *session) Done() <-chan struct{} { return s.done }

// SessionID is the id lock records carry.
func (s *session) SessionID() string { return s.id }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func mustMarshal(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(err) // only our own record types: a programming error
	}
	return b
}
