package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/musterhq/muster/servicegroup/driver"
)

func init() {
	driver.Register("redis", Open)
	driver.Register("rediss", Open)
}

const backend = "redis"

// createdField is tooz's marker field in every group hash; no member may
// be called that.
const createdField = "__created__"

type session struct {
	cfg    *config
	where  string // the redacted URL, for errors
	rdb    goredis.UniversalClient
	id     string
	member string
	inst   string
	ttl    time.Duration

	mu     sync.Mutex
	closed bool
	lost   bool
	done   chan struct{}
	locks  map[string]string // lock name -> our record's value
	wg     sync.WaitGroup    // watches
}

// Open opens a session on the Redis server (or Sentinel-managed master)
// the URL names.
func Open(ctx context.Context, opts driver.Options) (driver.Driver, error) {
	where := driver.Redact(opts.URL)
	cfg, err := parseURL(opts.URL)
	if err != nil {
		return nil, driver.Unavailable(backend, where, err)
	}
	if opts.TTL <= 0 {
		return nil, driver.Errorf(backend, "open", where, fmt.Errorf("TTL %v must be positive", opts.TTL))
	}
	if err := driver.ValidateName("member", opts.Member); err != nil {
		return nil, driver.Errorf(backend, "open", where, err)
	}
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = 5 * time.Second
	}
	octx, cancel := context.WithTimeout(ctx, dial)
	defer cancel()
	s := &session{cfg: cfg, where: where, rdb: cfg.client(dial), id: newSessionID(),
		member: opts.Member, inst: opts.Instance, ttl: opts.TTL,
		done: make(chan struct{}), locks: map[string]string{}}
	if _, err := s.run(octx, openScript, s.member, s.inst, ms(s.ttl)); err != nil {
		_ = s.rdb.Close()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no answer within the dial timeout %v", dial)
		}
		return nil, driver.Unavailable(backend, where, redactErr(err, cfg))
	}
	return s, nil
}

// redactErr keeps a password out of a server's error text.
func redactErr(err error, c *config) error {
	if c.password == "" || !strings.Contains(err.Error(), c.password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), c.password, "xxxxx"))
}

func ms(d time.Duration) int64 {
	if m := d.Milliseconds(); m > 0 {
		return m
	}
	return 1
}

// run runs a script with the namespace and session id before args.
func (s *session) run(ctx context.Context, sc *goredis.Script, args ...any) ([]any, error) {
	all := append([]any{s.cfg.namespace, s.id}, args...)
	v, err := sc.Run(ctx, s.rdb, nil, all...).Slice()
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, errors.New("empty script reply")
	}
	return v, nil
}

// call runs a script for op on name, after the local checks, and maps its
// status to the SPI's errors.
func (s *session) call(ctx context.Context, op, name string, sc *goredis.Script, args ...any) ([]any, error) {
	if err := s.usable(op, name); err != nil {
		return nil, err
	}
	v, err := s.run(ctx, sc, args...)
	if err != nil {
		return nil, s.unavailable(ctx, op, name, err)
	}
	code, _ := v[0].(int64)
	var sentinel error
	switch code {
	case stOK:
		return v, nil
	case stLost:
		s.markLost()
		sentinel = driver.ErrSessionLost
	case stNotFound:
		sentinel = driver.ErrGroupNotFound
	case stExists:
		if op == "join" {
			sentinel = fmt.Errorf("%w: %q", driver.ErrMemberExists, s.member)
		} else {
			sentinel = driver.ErrGroupExists
		}
	case stNotMem:
		sentinel = driver.ErrNotMember
	case stNotEmpty:
		sentinel = driver.ErrGroupNotEmpty
	case stHeld:
		sentinel = driver.ErrLockHeld
	case stNotHeld:
		sentinel = driver.ErrNotLocked
	default:
		sentinel = fmt.Errorf("unexpected script status %v", v[0])
	}
	return v, driver.Errorf(backend, op, name, sentinel)
}

// usable is ErrClosed or ErrSessionLost for op on name once the session
// is closed or lost.
func (s *session) usable(op, name string) error {
	s.mu.Lock()
	closed, lost := s.closed, s.lost
	s.mu.Unlock()
	if closed {
		return driver.Errorf(backend, op, name, driver.ErrClosed)
	}
	if lost {
		return driver.Errorf(backend, op, name, driver.ErrSessionLost)
	}
	return nil
}

// unavailable is the error of op on name that the server did not answer
// (ctx's own error when ctx ended).
func (s *session) unavailable(ctx context.Context, op, name string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return driver.Errorf(backend, op, name, fmt.Errorf("%w: %s: %v", driver.ErrUnavailable, s.where, redactErr(err, s.cfg)))
}

func (s *session) markLost() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lost {
		s.lost = true
		close(s.done)
	}
}

// SessionID is this session's random id, as LockHolder reports it.
func (s *session) SessionID() string { return s.id }

func (s *session) Heartbeat(ctx context.Context) error {
	v, err := s.call(ctx, "heartbeat", s.member, heartbeatScript, s.member, s.inst, ms(s.ttl))
	if err != nil {
		return err
	}
	if len(v) > 1 { // locks found gone or taken: forget them
		s.mu.Lock()
		for _, l := range v[1:] {
			if name, ok := l.(string); ok {
				delete(s.locks, name)
			}
		}
		s.mu.Unlock()
	}
	return nil
}

func (s *session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	wasLost := s.lost
	if !s.lost {
		s.lost = true
		close(s.done)
	}
	s.mu.Unlock()
	var err error
	if !wasLost {
		if _, rerr := s.run(ctx, closeScript); rerr != nil {
			err = driver.Errorf(backend, "close", s.where, fmt.Errorf("%w: %v", driver.ErrUnavailable, redactErr(rerr, s.cfg)))
		}
	}
	s.wg.Wait()
	if cerr := s.rdb.Close(); err == nil && cerr != nil && !errors.Is(cerr, goredis.ErrClosed) {
		err = driver.Errorf(backend, "close", s.where, cerr)
	}
	return err
}

func (s *session) Done() <-chan struct{} { return s.done }

func (s *session) CreateGroup(ctx context.Context, group string) error {
	_, err := s.call(ctx, "create group", group, createScript, group)
	return err
}

func (s *session) DeleteGroup(ctx context.Context, group string) error {
	_, err := s.call(ctx, "delete group", group, deleteScript, group, ms(s.cfg.toozTTL))
	return err
}

func (s *session) Groups(ctx context.Context) ([]string, error) {
	v, err := s.call(ctx, "list groups", "", groupsScript)
	if err != nil {
		return nil, err
	}
	out := []string{}
	if len(v) > 1 {
		if l, ok := v[1].([]any); ok {
			for _, g := range l {
				if gs, ok := g.(string); ok {
					out = append(out, gs)
				}
			}
		}
	}
	return out, nil
}

// storedCaps is what the group hash holds for caps: tooz loads every
// value with msgpack, so "none" is stored as msgpack nil, never as "".
func storedCaps(caps []byte) []byte {
	if len(caps) == 0 {
		return []byte{0xc0}
	}
	return caps
}

// readCaps maps the stored "none" values (msgpack nil, and tooz's default
// b"" and "") back to nil.
func readCaps(v string) []byte {
	switch v {
	case "", "\xc0", "\xc4\x00", "\xa0", "\xd9\x00":
		return nil
	}
	return []byte(v)
}

func (s *session) Join(ctx context.Context, group string, caps []byte) error {
	if s.member == createdField {
		return driver.Errorf(backend, "join", group, fmt.Errorf("%w: member %q is tooz's group marker", driver.ErrInvalidName, s.member))
	}
	_, err := s.call(ctx, "join", group, joinScript, group, s.member, storedCaps(caps), ms(s.cfg.toozTTL))
	return err
}

func (s *session) Leave(ctx context.Context, group string) error {
	_, err := s.call(ctx, "leave", group, leaveScript, group, s.member)
	return err
}

func (s *session) Members(ctx context.Context, group string) ([]driver.Member, error) {
	return s.members(ctx, "members", group, "")
}

func (s *session) members(ctx context.Context, op, group, only string) ([]driver.Member, error) {
	v, err := s.call(ctx, op, group, membersScript, group, ms(s.cfg.toozTTL), only)
	if err != nil {
		return nil, err
	}
	out := make([]driver.Member, 0, (len(v)-2)/4)
	for i := 2; i+3 < len(v); i += 4 {
		id, _ := v[i].(string)
		caps, _ := v[i+1].(string)
		upd, _ := v[i+2].(int64)
		down, _ := v[i+3].(int64)
		out = append(out, driver.Member{ID: id, Capabilities: readCaps(caps),
			UpdatedAt: time.UnixMilli(upd), ForcedDown: down == 1})
	}
	return out, nil
}

// KnownMembers lists every member field of the group's hash, live or not,
// and the forced-down names with no field. A dead member's field stays
// until a Members, Join or DeleteGroup script finds it; its session's
// record (and so its last renewal) expires with the session.
func (s *session) KnownMembers(ctx context.Context, group string) ([]driver.KnownMember, error) {
	v, err := s.call(ctx, "known members", group, knownScript, group, ms(s.cfg.toozTTL))
	if err != nil {
		return nil, err
	}
	out := make([]driver.KnownMember, 0, (len(v)-1)/5)
	for i := 1; i+4 < len(v); i += 5 {
		id, _ := v[i].(string)
		caps, _ := v[i+1].(string) // nil (Lua false) for a mark alone
		upd, _ := v[i+2].(int64)
		down, _ := v[i+3].(int64)
		alive, _ := v[i+4].(int64)
		m := driver.KnownMember{Member: driver.Member{ID: id, Capabilities: readCaps(caps), ForcedDown: down == 1}, Live: alive == 1}
		if upd > 0 {
			m.UpdatedAt = time.UnixMilli(upd)
		}
		out = append(out, m)
	}
	return out, nil
}

var _ driver.KnownMemberLister = (*session)(nil)

// Member is one live member of group, as Members would list it, without
// listing the others; ErrNotMember when it is not live there.
func (s *session) Member(ctx context.Context, group, member string) (driver.Member, error) {
	ms, err := s.members(ctx, "member", group, member)
	if err != nil {
		return driver.Member{}, err
	}
	if len(ms) == 0 {
		return driver.Member{}, driver.Errorf(backend, "member", group, fmt.Errorf("%w: %q", driver.ErrNotMember, member))
	}
	return ms[0], nil
}

func (s *session) SetCapabilities(ctx context.Context, group string, caps []byte) error {
	_, err := s.call(ctx, "set capabilities", group, setCapsScript, group, s.member, storedCaps(caps))
	return err
}

func (s *session) SetForcedDown(ctx context.Context, group, member string, down bool) error {
	flag := ""
	if down {
		flag = "1"
	}
	_, err := s.call(ctx, "force down", group, forceDownScript, group, member, flag)
	return err
}

func (s *session) TryLock(ctx context.Context, name string) (driver.Token, error) {
	v, err := s.call(ctx, "lock", name, lockScript, name, s.member, ms(s.ttl))
	if err != nil {
		return 0, err
	}
	ts, _ := v[1].(string)
	tok, perr := strconv.ParseUint(ts, 10, 64)
	if perr != nil {
		return 0, driver.Errorf(backend, "lock", name, fmt.Errorf("bad token %q", ts))
	}
	s.mu.Lock()
	s.locks[name] = lockValue(s.id, tok, s.member)
	s.mu.Unlock()
	return driver.Token(tok), nil
}

func lockValue(sid string, tok uint64, member string) string {
	return "muster1 " + sid + " " + strconv.FormatUint(tok, 10) + " " + member
}

func (s *session) Unlock(ctx context.Context, name string, token driver.Token) error {
	v := lockValue(s.id, uint64(token), s.member)
	_, err := s.call(ctx, "unlock", name, unlockScript, name, v)
	if err == nil {
		s.mu.Lock()
		if s.locks[name] == v {
			delete(s.locks, name)
		}
		s.mu.Unlock()
	}
	return err
}

func (s *session) LockHolder(ctx context.Context, name string) (driver.LockHolder, error) {
	v, err := s.call(ctx, "lock holder", name, holderScript, name)
	if err != nil {
		return driver.LockHolder{}, err
	}
	val, _ := v[1].(string)
	return parseHolder(val), nil
}

// parseHolder reads a lock record; one written by tooz (redis-py's token)
// has no member, token or session muster could show.
func parseHolder(v string) driver.LockHolder {
	rest, ok := strings.CutPrefix(v, "muster1 ")
	if !ok {
		return driver.LockHolder{}
	}
	parts := strings.SplitN(rest, " ", 3)
	if len(parts) != 3 {
		return driver.LockHolder{}
	}
	tok, _ := strconv.ParseUint(parts[1], 10, 64)
	return driver.LockHolder{Session: parts[0], Token: driver.Token(tok), Member: parts[2]}
}

func (s *session) BreakLock(ctx context.Context, name string) error {
	_, err := s.call(ctx, "break lock", name, breakScript, name)
	return err
}

func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
