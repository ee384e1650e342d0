package file

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Names inside the directory. User names only ever appear below groupsDir,
// marksDir and locksDir, each in a directory of its own kind.
const (
	formatFile   = "format"
	lockFile     = "lock"
	sessionsDir  = "sessions"
	groupsDir    = "groups"
	marksDir     = "marks"
	locksDir     = "locks"
	tmpDir       = "tmp"
	instancesDir = "instances"
	sweptFile    = "swept"

	formatLine = "muster-file 3\n"

	dirPerm  = 0o770 // the umask decides who else may share the directory
	filePerm = 0o660
)

// processLocks serializes, per directory, the sessions of this process
// before they contend for the flock: flock would not exclude two goroutines
// sharing one descriptor, and polling it is slower than a channel.
var processLocks sync.Map // dir -> chan struct{}

func processLock(dir string) chan struct{} {
	c, _ := processLocks.LoadOrStore(dir, make(chan struct{}, 1))
	return c.(chan struct{})
}

// lock takes the directory's flock for a short critical section. It honours
// ctx: a process frozen inside a critical section must not hang every other
// caller forever. An uncontended flock is taken even if ctx has ended, so
// that Close with a spent context still cleans up.
func (s *session) lock(ctx context.Context) (unlock func(), err error) {
	select {
	case s.plock <- struct{}{}:
	default:
		select {
		case s.plock <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	delay := 20 * time.Microsecond
	for {
		ok, err := s.flock()
		if err != nil {
			<-s.plock
			return nil, err
		}
		if ok {
			return s.unlock, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			<-s.plock
			return nil, s.flockHeld(ctx.Err())
		}
		delay = min(2*delay, 5*time.Millisecond)
	}
}

// flockHeld is the error of a wait for the flock that ctx ended: it wraps
// err and names the process holding the flock, from /proc/locks, so a
// frozen holder can be found.
func (s *session) flockHeld(err error) error {
	var st unix.Stat_t
	if unix.Fstat(int(s.lockf.Fd()), &st) != nil {
		return err
	}
	b, rerr := os.ReadFile("/proc/locks")
	if rerr != nil {
		return err
	}
	// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
	dev := uint64(st.Dev) //nolint:unconvert // its type differs between platforms
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), st.Ino)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == want && f[4] != strconv.Itoa(os.Getpid()) {
			return fmt.Errorf("%w: the directory flock %s is held by pid %s (frozen or stuck?)", err, s.lockf.Name(), f[4])
		}
	}
	return fmt.Errorf("%w: waiting for the directory flock %s", err, s.lockf.Name())
}

// tryLock takes the flock only if nobody holds it, for work that can wait
// for another caller (tidying up after a read).
func (s *session) tryLock() (unlock func(), ok bool) {
	select {
	case s.plock <- struct{}{}:
	default:
		return nil, false
	}
	if ok, err := s.flock(); !ok || err != nil {
		<-s.plock
		return nil, false
	}
	return s.unlock, true
}

func (s *session) flock() (bool, error) {
	for {
		err := unix.Flock(int(s.lockf.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return true, nil
		case unix.EINTR:
			continue
		case unix.EWOULDBLOCK:
			return false, nil
		}
		return false, fmt.Errorf("flock %s: %w", s.lockf.Name(), err)
	}
}

func (s *session) unlock() {
	_ = unix.Flock(int(s.lockf.Fd()), unix.LOCK_UN)
	<-s.plock
}

// path joins the directory with parts; callers have checked every user
// name with checkName, so the result never leaves the directory.
func (s *session) path(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

// judge decides which sessions are alive, by one reading of the boot
// clock, caching what it learns for one call.
//
// The clock is read before any session file is. So if a reader finds a
// session expired, the session's own Heartbeat, which reads the clock again
// after its rewrite of the renewal landed (see session.Heartbeat), finds
// it expired too: its now is later, its last renewal the same. Both sides
// agree without a lock.
type judge struct {
	s     *session
	now   time.Duration // CLOCK_BOOTTIME
	stats map[string]sessionStat
}

type sessionStat struct {
	renewed time.Time     // the wall clock at the last renewal: UpdatedAt
	at      time.Duration // the boot clock at the last renewal: liveness
	exists  bool          // written during this boot, and readable
}

func (s *session) judge() (*judge, error) {
	return &judge{s: s, now: bootNow()}, nil
}

// alive says whether session id, with time to live ttl, is alive, and when
// it was last renewed.
func (j *judge) alive(id string, ttl time.Duration) (st sessionStat, ok bool, err error) {
	st, cached := j.stats[id]
	if !cached {
		if st, err = j.read(id); err != nil {
			return sessionStat{}, false, err
		}
		if j.stats == nil {
			j.stats = make(map[string]sessionStat)
		}
		j.stats[id] = st
	}
	return st, st.exists && j.now-st.at < ttl, nil
}

// read reads session id's last renewal. A session file this muster cannot
// read is dead to it.
func (j *judge) read(id string) (sessionStat, error) {
	if id == j.s.id {
		// This session itself: its file is open, and this host's.
		r, exists, err := j.s.ownRenewal()
		if err != nil && !errors.Is(err, errGarbage) {
			return sessionStat{}, err
		}
		return sessionStat{renewed: r.wall, at: r.at, exists: exists && err == nil}, nil
	}
	p := j.s.path(sessionsDir, id)
	rec, r, exists, err := readSession(p)
	switch {
	case errors.Is(err, errGarbage), err == nil && !exists:
		return sessionStat{}, nil
	case err != nil:
		return sessionStat{}, err
	}
	thisBoot, err := sameHost(rec, p)
	if err != nil {
		return sessionStat{}, err
	}
	// A renewal from an earlier boot is dead, and so is one whose owner
	// process has exited (kill -9 leaves no Close): its TTL need not pass.
	return sessionStat{renewed: r.wall, at: r.at, exists: thisBoot && !processGone(rec)}, nil
}

// writeFile replaces dst with data atomically: a reader sees the old record
// or the new one, never half of one. Callers hold the flock, so anything
// left in tmp/ under writeFile's names while the flock is held is garbage
// from a killed writer.
func (s *session) writeFile(dst string, data []byte) error {
	return s.write(dst, data, false)
}

// openFile is os.OpenFile for the regular files of hot paths (records,
// lock files), in two system calls instead of six: os.OpenFile puts each
// descriptor in non-blocking mode, fails to add a regular file to the
// network poller (epoll refuses it), and puts it back, four fcntl and one
// epoll_ctl for nothing. os.NewFile does none of that for a descriptor
// opened blocking; it asks for its flags once.
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	fd, err := openFd(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// openFd is open(2) (close-on-exec, again on EINTR), its error naming
// the path as os.OpenFile's does.
func openFd(name string, flag int, perm os.FileMode) (int, error) {
	for {
		fd, err := unix.Open(name, flag|unix.O_CLOEXEC, uint32(perm.Perm()))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return -1, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return fd, nil
	}
}

// syncLocks says whether lock records that issue a token are made durable
// (fsync of the record and of locks/) before the token is returned; only
// the benchmark turns it off, to measure what it costs.
var syncLocks = true

// write is writeFile; with durable, the record and its directory are
// fsynced before it returns, so a power cut cannot bring back an older one.
func (s *session) write(dst string, data []byte, durable bool) error {
	tmp := s.path(tmpDir, "w-"+randomHex(8))
	f, err := openFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if durable {
		return syncDir(filepath.Dir(dst))
	}
	return nil
}

// readFile reads a record; a missing file is (nil, nil).
func readFile(path string) ([]byte, error) {
	b, err := readAll(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil && errors.Is(err, syscall.EISDIR) {
		return nil, errGarbage
	}
	if err == nil && b == nil {
		b = []byte{} // present but empty: garbage, not missing
	}
	return b, err
}

// readAll is os.ReadFile in four system calls instead of ten (see
// openFile): a GetAll reads every member's record and its session's, and
// an IsUp one of each. It opens no os.File, so no fcntl, epoll_ctl or
// fstat; a record under 512 bytes is read with one read(2), and one more
// sees its end.
func readAll(path string) ([]byte, error) {
	fd, err := openFd(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return b, nil
		}
		b = b[:len(b)+n]
	}
}

// removeFile removes path; a missing file is not an error.
func removeFile(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// cleanTmp removes what killed writers left in tmp/: only files under the
// names writeFile uses. The caller holds the flock, so no live writer is
// using them. Anything else there is not muster's and is left alone.
func (s *session) cleanTmp() {
	entries, err := os.ReadDir(s.path(tmpDir))
	if err != nil {
		s.log.Warn("file: listing temporary files", errField(err))
		return
	}
	for _, e := range entries {
		p := s.path(tmpDir, e.Name())
		if !isTempName(e.Name()) || !e.Type().IsRegular() {
			s.log.Debug("file: leaving alone a file muster did not write", pathField(p))
			continue
		}
		if err := os.Remove(p); err != nil {
			s.log.Warn("file: removing a leftover temporary file", pathField(p), errField(err))
			continue
		}
		s.log.Info("file: removed a leftover temporary file", pathField(p))
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// isSessionID reports whether id is a session id this package makes; a
// record naming anything else is garbage (and never becomes a path).
func isSessionID(id string) bool { return len(id) == 32 && isHex(id) }
