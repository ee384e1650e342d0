// Package memory is a backend held in this process's memory, for tests and
// examples. Sessions opened with the same URL (memory://<name>) share one
// store; liveness is decided by the store's monotonic clock. It cannot run
// as a plugin: a plugin process would have a store of its own.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/musterhq/muster/servicegroup/driver"
)

func init() { driver.Register("memory", Open) }

const backend = "memory"

var (
	storesMu sync.Mutex
	stores   = map[string]*store{}
)

type store struct {
	mu       sync.Mutex
	groups   map[string]*group
	sessions map[*session]struct{}
	locks    map[string]*lockRec
	counters map[string]driver.Token // fencing tokens, kept after release
}

type group struct {
	members  map[string]*membership
	forced   map[string]bool
	watchers map[*watch]struct{}
}

// watch is one native watch of a group.
type watch struct {
	events chan driver.Event
	errc   chan error
	ended  bool
}

// watchBuffer is how many events a watch holds for a slow reader; past it
// the watch ends with errSlowWatcher and the reader watches anew.
const watchBuffer = 256

var errSlowWatcher = errors.New("memory: watch: the reader fell behind")

// notify tells g's watchers; caller holds st.mu.
func (g *group) notify(ev driver.Event) {
	for w := range g.watchers {
		select {
		case w.events <- ev:
		default:
			g.endWatch(w, errSlowWatcher)
		}
	}
}

// endWatch ends w with err (nil when its context ended); caller holds st.mu.
func (g *group) endWatch(w *watch, err error) {
	if w.ended {
		return
	}
	w.ended = true
	delete(g.watchers, w)
	w.errc <- err
	close(w.events)
}

type membership struct {
	s    *session
	caps []byte
}

type lockRec struct {
	s     *session
	token driver.Token
}

type session struct {
	st       *store
	id       string // random per Open: LockHolder.Session
	member   string
	instance string
	ttl      time.Duration
	expires  time.Time
	renewed  time.Time
	timer    *time.Timer
	ended    bool
	closed   bool
	done     chan struct{}
}

// Open opens a session on the store named by the URL's host
// (memory://name); sessions with the same name share it.
func Open(ctx context.Context, opts driver.Options) (driver.Driver, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || u.Scheme != "memory" {
		return nil, driver.Unavailable(backend, driver.Redact(opts.URL), fmt.Errorf("want memory://<name>"))
	}
	if opts.TTL <= 0 {
		return nil, driver.Errorf(backend, "open", opts.URL, fmt.Errorf("TTL %v must be positive", opts.TTL))
	}
	name := u.Host + u.Path
	storesMu.Lock()
	st, ok := stores[name]
	if !ok {
		st = &store{groups: map[string]*group{}, sessions: map[*session]struct{}{},
			locks: map[string]*lockRec{}, counters: map[string]driver.Token{}}
		stores[name] = st
	}
	storesMu.Unlock()

	st.mu.Lock()
	defer st.mu.Unlock()
	for old := range st.sessions {
		if opts.Instance != "" && old.instance == opts.Instance {
			st.end(old)
		}
	}
	now := time.Now()
	s := &session{st: st, id: newSessionID(), member: opts.Member, instance: opts.Instance, ttl: opts.TTL,
		expires: now.Add(opts.TTL), renewed: now, done: make(chan struct{})}
	s.timer = time.AfterFunc(opts.TTL, s.expire)
	st.sessions[s] = struct{}{}
	return s, nil
}

// expire runs when the session's TTL may have run out.
func (s *session) expire() {
	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if s.ended {
		return
	}
	if d := time.Until(s.expires); d > 0 {
		s.timer.Reset(d)
		return
	}
	st.end(s)
}

// end removes every record of s and signals Done. Caller holds st.mu.
func (st *store) end(s *session) {
	if s.ended {
		return
	}
	s.ended = true
	s.timer.Stop()
	delete(st.sessions, s)
	for name, g := range st.groups {
		for id, m := range g.members {
			if m.s == s {
				delete(g.members, id)
				g.notify(driver.Event{Type: driver.Left, Group: name, Member: id})
			}
		}
	}
	for name, l := range st.locks {
		if l.s == s {
			delete(st.locks, name)
		}
	}
	close(s.done)
}

// live checks s may act; caller holds st.mu.
func (s *session) live(op, name string) error {
	if s.closed {
		return driver.Errorf(backend, op, name, driver.ErrClosed)
	}
	if !s.ended && !time.Now().Before(s.expires) {
		s.st.end(s)
	}
	if s.ended {
		return driver.Errorf(backend, op, name, driver.ErrSessionLost)
	}
	return nil
}

func (s *session) lock(op, name string) error {
	s.st.mu.Lock()
	// Timers end expired sessions, but a busy runtime may run them late:
	// nobody may see a member or lock whose TTL has passed.
	now := time.Now()
	for o := range s.st.sessions {
		if !now.Before(o.expires) {
			s.st.end(o)
		}
	}
	if err := s.live(op, name); err != nil {
		s.st.mu.Unlock()
		return err
	}
	return nil
}

func (s *session) group(op, name string) (*group, error) {
	g, ok := s.st.groups[name]
	if !ok {
		return nil, driver.Errorf(backend, op, name, driver.ErrGroupNotFound)
	}
	return g, nil
}

func (s *session) Heartbeat(ctx context.Context) error {
	if err := s.lock("heartbeat", s.member); err != nil {
		return err
	}
	defer s.st.mu.Unlock()
	now := time.Now()
	s.expires, s.renewed = now.Add(s.ttl), now
	return nil
}

func (s *session) Close(ctx context.Context) error {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.closed = true
	s.st.end(s)
	return nil
}

func (s *session) Done() <-chan struct{} { return s.done }

func (s *session) CreateGroup(ctx context.Context, name string) error {
	if err := s.lock("create group", name); err != nil {
		return err
	}
	defer s.st.mu.Unlock()
	if _, ok := s.st.groups[name]; ok {
		return driver.Errorf(backend, "create group", name, driver.ErrGroupExists)
	}
	s.st.groups[name] = &group{members: map[string]*membership{}, forced: map[string]bool{}, watchers: map[*watch]struct{}{}}
	return nil
}

func (s *session) DeleteGroup(ctx context.Context, name string) error {
	if err := s.lock("delete group", name); err != nil {
		return err
	}
	defer s.st.mu.Unlock()
	g, err := s.group("delete group", name)
	if err != nil {
		return err
	}
	if len(g.members) > 0 {
		return driver.Errorf(backend, "delete group", name, driver.ErrGroupNotEmpty)
	}
	delete(s.st.groups, name)
	for w := range g.watchers {
		g.endWatch(w, driver.Errorf(backend, "watch", name, driver.ErrGroupNotFound))
	}
	return nil
}

func (s *session) Groups(ctx context.Context) ([]string, error) {
	if err := s.lock("list groups", ""); err != nil {
		return nil, err
	}
	defer s.st.mu.Unlock()
	out := make([]string, 0, len(s.st.groups))
	for name := range s.st.groups {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

func (s *session) Join(ctx context.Context, name string, caps []byte) error {
	if err := s.lock("join", name); err != nil {
		return err
	}
	defer s.st.mu.Unlock()
	g, err := s.group("join", name)
	if err != nil {
		return err
	}
	if _, ok := g.members[s.member]; ok {
		return driver.Errorf(backend, "join", name, fmt.Errorf("%w: %q", driver.ErrMemberExists, s.member))
	}
	g.members[s.member] = &membership{s: s, caps: clone(caps)}
	g.notify(driver.Event{Type: driver.Joined, Group: name, Member: s.member})
	return nil
}

func (s *session) Leave(ctx context.Context, name string) error {
	if err := s.lock("leave", name); err != nil {
		return err
	}
	defer s.st.mu.Unlock()
	g, err := s.group("leave", name)
	if err != nil {
		return err
	}
	if m, ok := g.members[s.member]; !ok || m.s != s {
		return driver.Errorf(backend, "leave", name, driver.ErrNotMember)
	}
	delete(g.members, s.member)
	g.notify(driver.Event{Type: driver.Left, Group: name, Member: s.member})
	return nil
}

func (s *session) Members(ctx context.Context, name string) ([]driver.Member, error) {
	if err := s.lock("members", name); err != nil {
		return nil, err
	}
	defer s.st.mu.Unlock()
	g, err := s.group("members", name)
	if err != nil {
		return nil, err
	}
	out := make([]driver.Member, 0, len(g.members))
	for id, m := range g.members {
		out = append(out, driver.Member{ID: id, Capabilities: clone(m.caps), UpdatedAt: m.s.renewed, ForcedDown: g.forced[id]})
	}
	return out, nil
}

func (s *session) SetCapabilities(ctx context.Context, name string, caps []byte) error {
	if err := s.lock("set capabilities", name); err != nil {
		return err
	}
	defer s.st.mu.Unlock()
	g, err := s.group("set capabilities", name)
	if err != nil {
		return err
	}
	m, ok := g.members[s.member]
	if !ok || m.s != s {
		return driver.Errorf(backend, "set capabilities", name, driver.ErrNotMember)
	}
	m.caps = clone(caps)
	g.notify(driver.Event{Type: driver.Updated, Group: name, Member: s.member})
	return nil
}

func (s *session) SetForcedDown(ctx context.Context, name, member string, down bool) error {
	if err := s.lock("force down", name); err != nil {
		return err
	}
	defer s.st.mu.Unlock()
	g, err := s.group("force down", name)
	if err != nil {
		return err
	}
	if g.forced[member] == down {
		return nil // no change: nothing to tell
	}
	if down {
		g.forced[member] = true
	} else {
		delete(g.forced, member)
	}
	if _, live := g.members[member]; live {
		g.notify(driver.Event{Type: driver.Updated, Group: name, Member: member})
	}
	return nil
}

func (s *session) TryLock(ctx context.Context, name string) (driver.Token, error) {
	if err := s.lock("lock", name); err != nil {
		return 0, err
	}
	defer s.st.mu.Unlock()
	if _, held := s.st.locks[name]; held {
		return 0, driver.Errorf(backend, "lock", name, driver.ErrLockHeld)
	}
	s.st.counters[name]++
	tok := s.st.counters[name]
	s.st.locks[name] = &lockRec{s: s, token: tok}
	return tok, nil
}

func (s *session) Unlock(ctx context.Context, name string, token driver.Token) error {
	if err := s.lock("unlock", name); err != nil {
		return err
	}
	defer s.st.mu.Unlock()
	l, held := s.st.locks[name]
	if !held || l.s != s || l.token != token {
		return driver.Errorf(backend, "unlock", name, driver.ErrNotLocked)
	}
	delete(s.st.locks, name)
	return nil
}

func (s *session) LockHolder(ctx context.Context, name string) (driver.LockHolder, error) {
	if err := s.lock("lock holder", name); err != nil {
		return driver.LockHolder{}, err
	}
	defer s.st.mu.Unlock()
	l, held := s.st.locks[name]
	if !held {
		return driver.LockHolder{}, driver.Errorf(backend, "lock holder", name, driver.ErrNotLocked)
	}
	return driver.LockHolder{Member: l.s.member, Token: l.token, Session: l.s.id}, nil
}

func (s *session) BreakLock(ctx context.Context, name string) error {
	if err := s.lock("break lock", name); err != nil {
		return err
	}
	defer s.st.mu.Unlock()
	if _, held := s.st.locks[name]; !held {
		return driver.Errorf(backend, "break lock", name, driver.ErrNotLocked)
	}
	delete(s.st.locks, name)
	return nil
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// Watch streams group's joins and leaves (expiries included), and the
// updates of its live members (capabilities, forced-down marks), as they
// happen, until ctx ends or the group is deleted.
func (s *session) Watch(ctx context.Context, name string) (<-chan driver.Event, <-chan error, error) {
	if err := s.lock("watch", name); err != nil {
		return nil, nil, err
	}
	defer s.st.mu.Unlock()
	g, err := s.group("watch", name)
	if err != nil {
		return nil, nil, err
	}
	w := &watch{events: make(chan driver.Event, watchBuffer), errc: make(chan error, 1)}
	g.watchers[w] = struct{}{}
	context.AfterFunc(ctx, func() {
		s.st.mu.Lock()
		defer s.st.mu.Unlock()
		g.endWatch(w, nil)
	})
	return w.events, w.errc, nil
}

// SessionID is this session's random id, as LockHolder reports it.
func (s *session) SessionID() string { return s.id }

func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// Member is one live member of group, as Members would list it, without
// listing the group; ErrNotMember when it is not live there.
func (s *session) Member(ctx context.Context, name, member string) (driver.Member, error) {
	if err := s.lock("member", name); err != nil {
		return driver.Member{}, err
	}
	defer s.st.mu.Unlock()
	g, err := s.group("member", name)
	if err != nil {
		return driver.Member{}, err
	}
	m, ok := g.members[member]
	if !ok {
		return driver.Member{}, driver.Errorf(backend, "member", name, fmt.Errorf("%w: %q", driver.ErrNotMember, member))
	}
	return driver.Member{ID: member, Capabilities: clone(m.caps), UpdatedAt: m.s.renewed, ForcedDown: g.forced[member]}, nil
}

// The optional interfaces the core finds by type assertion.
var (
	_ driver.SessionID    = (*session)(nil)
	_ driver.MemberGetter = (*session)(nil)
	_ driver.Watcher      = (*session)(nil)
)
