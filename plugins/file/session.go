package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/musterhq/muster/servicegroup/driver"
)

func init() { driver.Register("file", Open) }

const backend = "file"

// session is one Driver: one member's session in one directory.
type session struct {
	dir      string
	id       string
	member   string
	instance string
	ttl      time.Duration
	ownerPID int  // opts.OwnerPID: the process whose exit ends the session at once
	host     host // this host and boot, for the session file
	log      *zap.Logger

	lockf *os.File      // flock(2) target, one descriptor per session
	plock chan struct{} // processLock(dir)

	// own is this session's file, open from start to Close: Heartbeat and
	// the session's checks of itself read and rewrite its renewal (at
	// ownAt) through it, not by opening the file by name each time.
	own   *os.File
	ownAt int64

	// life is held shared by every call and exclusively by Close, which so
	// waits for calls in flight before it releases their files.
	life   sync.RWMutex
	closed bool // guarded by life

	// held names the locks this session took and has not released: its
	// own cleanup (Close, loss) reads only those records, not every lock
	// name the directory ever saw.
	heldMu sync.Mutex
	held   map[string]bool

	lost     atomic.Bool
	doneOnce sync.Once
	done     chan struct{}

	// The watchdog closes done when the TTL passes without a renewal, even
	// if nobody calls: Done must report an expired session by itself.
	stop        context.CancelFunc
	stopCtx     context.Context
	watchExited chan struct{}
}

// Open opens a session in the directory named by opts.URL, which must be
// file:// followed by an absolute path (file:///var/lib/muster). The
// directory is created if missing. Open ends every earlier session of
// opts.Instance at once, and (at most once per TTL, whoever opens) removes
// the records of sessions that have expired.
func Open(ctx context.Context, opts driver.Options) (driver.Driver, error) {
	dir, err := parseURL(opts.URL)
	if err != nil {
		return nil, driver.Errorf(backend, "open", driver.Redact(opts.URL), err)
	}
	if opts.TTL <= 0 {
		return nil, driver.Errorf(backend, "open", opts.URL, fmt.Errorf("TTL %v must be positive", opts.TTL))
	}
	if opts.Member != "" {
		if err := checkName("member", opts.Member); err != nil {
			return nil, driver.Errorf(backend, "open", opts.Member, err)
		}
	}
	if opts.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.DialTimeout)
		defer cancel()
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &session{
		dir:      dir,
		id:       randomHex(16),
		member:   opts.Member,
		instance: opts.Instance,
		ttl:      opts.TTL,
		ownerPID: opts.OwnerPID,
		log:      log.With(zap.String("backend", backend), zap.String("dir", dir)),
		plock:    processLock(dir),
		done:     make(chan struct{}),
	}
	if err := s.prepare(); err != nil {
		if s.lockf != nil {
			_ = s.lockf.Close()
		}
		if errors.Is(err, errForeignDir) {
			return nil, driver.Errorf(backend, "open", dir, err)
		}
		return nil, driver.Unavailable(backend, dir, err)
	}
	if err := s.start(ctx); err != nil {
		_ = s.lockf.Close()
		if s.own != nil {
			_ = s.own.Close()
		}
		if ctx.Err() != nil {
			return nil, driver.Errorf(backend, "open", dir, err)
		}
		return nil, driver.Unavailable(backend, dir, err)
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	s.watchExited = make(chan struct{})
	go s.watch()
	return s, nil
}

func parseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", fmt.Errorf("bad URL: %v", err)
	case u.Scheme != "file":
		return "", fmt.Errorf("not a file:// URL")
	case u.Opaque == "" && u.Host == "" && u.Path == "":
		return "", fmt.Errorf("no directory (an unset variable in file://$DIR?); want file:///var/lib/muster")
	case u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path):
		return "", fmt.Errorf("want file:// and an absolute path, as in file:///var/lib/muster")
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", fmt.Errorf("the file backend takes no user, query or fragment")
	}
	dir := filepath.Clean(u.Path)
	if err := refuseSystemDir(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// prepare makes the layout and opens the lock file: whatever fails here
// means the directory is unusable.
func (s *session) prepare() error {
	if err := adopt(s.dir); err != nil {
		return err
	}
	for _, d := range []string{sessionsDir, groupsDir, marksDir, locksDir, tmpDir, instancesDir} {
		if err := os.Mkdir(s.path(d), dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	f, err := os.OpenFile(s.path(lockFile), os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return err
	}
	s.lockf = f
	h, err := localHost()
	if err != nil {
		return err
	}
	s.host = h
	return nil
}

// reapLocked removes every record of the sessions in dead (session id ->
// member, "" if unknown). It removes the session files first: from then on
// their records read as dead, whatever happens to the rest. Caller holds
// the flock.
func (s *session) reapLocked(dead map[string]string) error {
	if len(dead) == 0 {
		return nil
	}
	members := map[string]bool{}
	for id, m := range dead {
		if err := removeFile(s.path(sessionsDir, id)); err != nil {
			return err
		}
		if m != "" {
			members[m] = true
		}
	}
	groups, err := os.ReadDir(s.path(groupsDir))
	if err != nil {
		return err
	}
	for _, g := range groups {
		if !g.IsDir() {
			continue
		}
		if err := s.reapGroupLocked(g.Name(), dead, members); err != nil {
			return err
		}
	}
	names, err := s.lockNames(dead)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := s.freeLocked(name, dead); err != nil {
			return err
		}
	}
	return nil
}

// freeLocked rewrites lock name as free if one of dead holds it. Caller
// holds the flock.
func (s *session) freeLocked(name string, dead map[string]string) error {
	h, err := s.openLock(name)
	if err != nil {
		return nil // not muster's, or unreadable: its holder reads as dead anyway
	}
	defer h.close()
	if h.f == nil {
		return nil // gone
	}
	if _, ok := dead[h.lf.cur.session]; !ok {
		return nil
	}
	return s.put(h, lockRecord{token: h.lf.cur.token}, false)
}

// lockNames are the lock records reapLocked rewrites as free for dead:
// only this session's own, which it knows, when dead is this session
// alone. Another session's lock records are left as they are: every reader
// judges a record by its holder's session, so a dead holder's lock reads as
// free already, and the next TryLock of that name writes over it. Reaping
// another session thus reads no lock record at all.
func (s *session) lockNames(dead map[string]string) ([]string, error) {
	if _, own := dead[s.id]; !own || len(dead) != 1 {
		return nil, nil
	}
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	names := make([]string, 0, len(s.held))
	for n := range s.held {
		names = append(names, n)
	}
	return names, nil
}

// holding records that this session took (or released) lock name.
func (s *session) holding(name string, held bool) {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if !held {
		delete(s.held, name)
		return
	}
	if s.held == nil {
		s.held = map[string]bool{}
	}
	s.held[name] = true
}

func (s *session) reapGroupLocked(group string, dead map[string]string, members map[string]bool) error {
	var names []string
	if len(members) <= 16 { // a few stats beat listing a big group
		for m := range members {
			names = append(names, m)
		}
	} else {
		entries, err := os.ReadDir(s.path(groupsDir, group))
		if err != nil {
			return nil // deleted meanwhile (not possible under the flock, but harmless)
		}
		for _, e := range entries {
			if members[e.Name()] {
				names = append(names, e.Name())
			}
		}
	}
	for _, m := range names {
		p := s.path(groupsDir, group, m)
		b, err := readFile(p)
		if b == nil || err != nil {
			continue
		}
		rec, err := parseMember(b)
		if err != nil {
			continue
		}
		if _, ok := dead[rec.session]; ok {
			if err := removeFile(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// begin starts a call: it holds life shared until the returned func runs.
// A lost session's calls fail with lostErr.
func (s *session) begin(ctx context.Context, op, name string, lostErr error) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, driver.Errorf(backend, op, name, err)
	}
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return nil, driver.Errorf(backend, op, name, driver.ErrClosed)
	}
	if s.lost.Load() {
		s.life.RUnlock()
		return nil, driver.Errorf(backend, op, name, lostErr)
	}
	return s.life.RUnlock, nil
}

// Whether an operation runs under the flock.
const (
	unlocked = false
	locked   = true
)

// run is the frame of operation op on name: the session must be open and
// not lost (else lostErr), check (the names' validity) must be nil, and
// with locked the body runs under the flock. Every error the body returns
// comes back wrapped with op and name.
func (s *session) run(ctx context.Context, op, name string, lostErr, check error, withFlock bool, body func() error) error {
	end, err := s.begin(ctx, op, name, lostErr)
	if err != nil {
		return err
	}
	defer end()
	if check != nil {
		return driver.Errorf(backend, op, name, check)
	}
	if withFlock {
		unlock, err := s.lock(ctx)
		if err != nil {
			return driver.Errorf(backend, op, name, err)
		}
		defer unlock()
	}
	return driver.Errorf(backend, op, name, body())
}

// aliveLocked checks this session is still alive; if not, it removes its
// records and ends it. Caller holds the flock.
func (s *session) aliveLocked(j *judge) (bool, error) {
	_, ok, err := j.alive(s.id, s.ttl)
	if err != nil || ok {
		return ok, err
	}
	s.loseLocked()
	return false, nil
}

// loseLocked ends a session found expired or removed. Caller holds the
// flock.
func (s *session) loseLocked() {
	if err := s.reapLocked(map[string]string{s.id: s.member}); err != nil {
		// Its records read as dead anyway; whoever comes across them
		// removes them.
		s.log.Warn("file: removing the records of a lost session", errField(err))
	}
	s.lost.Store(true)
	s.doneOnce.Do(func() { close(s.done) })
	s.log.Info("file: session lost", zap.String("session", s.id), zap.String("member", s.member))
}

// lose is loseLocked for a caller without the flock. It removes the
// session file first, which needs no flock: whatever happens next, the
// session's records read as dead from then on.
func (s *session) lose(ctx context.Context) {
	_ = removeFile(s.path(sessionsDir, s.id))
	unlock, err := s.lock(ctx)
	if err != nil {
		s.lost.Store(true)
		s.doneOnce.Do(func() { close(s.done) })
		return
	}
	defer unlock()
	s.loseLocked()
}

// Heartbeat renews the session: it rewrites the boot time in its session
// file, in place through the descriptor it keeps. It takes no lock (see judge for why readers and Heartbeat agree
// without one): it reads the last renewal, writes the new one in place,
// then reads the clock again, and if by then the last renewal was a TTL
// ago, a reader may have found the session expired: the session is lost,
// whatever it just wrote. A session file that is gone is never recreated.
func (s *session) Heartbeat(ctx context.Context) error {
	const op = "heartbeat"
	end, err := s.begin(ctx, op, s.member, driver.ErrSessionLost)
	if err != nil {
		return err
	}
	defer end()
	last, exists, err := s.ownRenewal()
	switch {
	case err != nil && !errors.Is(err, errGarbage):
		return driver.Errorf(backend, op, s.member, err)
	case err == nil && exists && bootNow()-last.at < s.ttl:
		if _, err := s.own.WriteAt(renewal{at: bootNow(), wall: wallNow()}.encode(), s.ownAt); err != nil {
			return driver.Errorf(backend, op, s.member, err)
		}
		if bootNow()-last.at < s.ttl {
			return nil
		}
	}
	// Gone (ended by a later session of this instance, or swept), or found
	// expired.
	s.lose(ctx)
	return driver.Errorf(backend, op, s.member, driver.ErrSessionLost)
}

// watch closes done once the session has expired, even if nobody calls.
func (s *session) watch() {
	defer close(s.watchExited)
	t := time.NewTimer(s.ttl)
	defer t.Stop()
	for {
		select {
		case <-s.stopCtx.Done():
			return
		case <-t.C:
		}
		next := s.check()
		if next <= 0 {
			return
		}
		t.Reset(next)
	}
}

// check looks at the session file once; it returns when to look again, or
// 0 when the session has ended.
func (s *session) check() time.Duration {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed || s.lost.Load() {
		return 0
	}
	j, err := s.judge()
	var st sessionStat
	ok := false
	if err == nil {
		st, ok, err = j.alive(s.id, s.ttl)
	}
	if err != nil {
		s.log.Warn("file: checking the session", errField(err))
		return max(s.ttl/4, time.Millisecond)
	}
	if !ok {
		s.lose(s.stopCtx)
		return 0
	}
	// Look again just after it would expire without renewal.
	return s.ttl - (j.now - st.at) + max(s.ttl/50, time.Millisecond)
}

// Close removes this session's memberships and locks and its session file,
// at once. It is idempotent.
func (s *session) Close(ctx context.Context) error {
	s.stop()
	<-s.watchExited
	s.life.Lock()
	if s.closed {
		s.life.Unlock()
		return nil
	}
	s.closed = true
	s.life.Unlock()
	defer s.doneOnce.Do(func() { close(s.done) })
	defer s.lockf.Close()
	defer s.own.Close()
	if s.lost.Load() {
		return nil
	}
	// Without the session file every record of the session reads as dead,
	// even if the flock cannot be had to remove them now.
	if err := removeFile(s.path(sessionsDir, s.id)); err != nil {
		return driver.Errorf(backend, "close", s.member, err)
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return driver.Errorf(backend, "close", s.member, err)
	}
	defer unlock()
	if err := s.reapLocked(map[string]string{s.id: s.member}); err != nil {
		return driver.Errorf(backend, "close", s.member, err)
	}
	return driver.Errorf(backend, "close", s.member, s.dropInstanceLocked())
}

// Done is closed when the session has ended: closed, expired, or ended by
// a later session of its instance. Expiry is noticed by Heartbeat, by any
// call that changes records, or by a watchdog at most a fiftieth of the TTL
// after the session expired.
func (s *session) Done() <-chan struct{} { return s.done }

func errField(err error) zap.Field   { return zap.Error(err) }
func pathField(p string) zap.Field   { return zap.String("path", p) }
func groupField(g string) zap.Field  { return zap.String("group", g) }
func memberField(m string) zap.Field { return zap.String("member", m) }
