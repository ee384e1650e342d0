package file

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/musterhq/muster/servicegroup/driver"
)

// A lock file (locks/<name>) is three fixed-size slots, each a checksummed
// record, so that taking and releasing a lock rewrites one slot in place
// instead of creating and renaming a file (five times the cost):
//
//	slot 0  the current record: last token issued, the boot it was written
//	        in, and the holder (session, member, TTL) if held. Rewritten in
//	        place without fsync.
//	slot 1  a token ceiling, fsynced: no token above it has been issued.
//	slot 2  the same, written alternately with slot 1, so a power cut that
//	        tears the one being written leaves the other.
//
// Within one boot every process reads slot 0 from the same page cache, so
// its token is the last one issued. Only a power cut or a kernel crash can
// lose it, and both change the boot id: a slot 0 of another boot (or torn)
// is not trusted, and the next token is above the durable ceiling instead.
// A token above the ceiling is issued only after the ceiling is raised by
// ceilingStep and fsynced, so one fsync covers ceilingStep acquires, and a
// power cut skips at most that many tokens. Readers that hold no flock may
// see slot 0 half-rewritten: its checksum fails and they read again.
//
// A lock file that does not exist yet is written whole, fsynced and
// renamed into place; so is a format-1 record ("muster lock 1", one record
// written by rename and fsynced on every acquire), which is read as both
// the current record and the ceiling.
const (
	lockSlot     = 1024 // a record with the longest member name fits in half
	lockFileSize = 3 * lockSlot
	lockMagic    = "muster lock 2\n"
	lockMagicV1  = "muster lock 1\n"
	ceilingStep  = 1024
)

// lockRecord is the current record of a lock. It outlives its holders:
// when free (session empty) it still keeps the last token issued, so
// tokens strictly increase forever.
type lockRecord struct {
	token   driver.Token
	session string // empty: free
	member  string
	ttl     time.Duration
}

// lockState is what a lock file holds.
type lockState struct {
	cur     lockRecord
	boot    string       // the boot slot 0 was written in; "" if unknown (torn, or format 1)
	ceiling driver.Token // the largest valid ceiling
	spare   int          // the ceiling slot to write next (the invalid or lower one)
	slotted bool         // three slots (else it is rewritten whole)
}

// lastIssued is the least the next token must exceed, seen from boot.
func (lf lockState) lastIssued(boot string) driver.Token {
	if lf.boot == boot {
		return lf.cur.token
	}
	return max(lf.cur.token, lf.ceiling)
}

// errTorn is a slot 0 whose checksum fails: a reader raced its rewrite, or
// a power cut tore it.
var errTorn = errors.New("torn lock record")

// parseLockFile parses a lock file's content.
func parseLockFile(b []byte) (lockState, error) {
	if bytes.HasPrefix(b, []byte(lockMagicV1)) {
		rec, err := parseLockV1(b)
		return lockState{cur: rec, ceiling: rec.token}, err
	}
	if len(b) != lockFileSize || !bytes.HasPrefix(b, []byte(lockMagic)) {
		return lockState{}, errGarbage
	}
	var (
		ceil  [3]driver.Token
		valid [3]bool
	)
	for i := 1; i <= 2; i++ {
		f, ok := parseSlot(b[i*lockSlot : (i+1)*lockSlot])
		c, err := strconv.ParseUint(f["ceiling"], 10, 64)
		ceil[i], valid[i] = driver.Token(c), ok && err == nil
	}
	lf := lockState{slotted: true}
	switch {
	case !valid[1] && !valid[2]:
		return lockState{}, errGarbage // both ceilings torn: not a file muster wrote
	case valid[1] && (!valid[2] || ceil[1] >= ceil[2]):
		lf.ceiling, lf.spare = ceil[1], 2
	default:
		lf.ceiling, lf.spare = ceil[2], 1
	}
	f, ok := parseSlot(b[:lockSlot])
	if !ok {
		return lf, errTorn
	}
	rec, err := lockFields(f)
	if err != nil {
		return lf, err
	}
	lf.cur, lf.boot = rec, f["boot"]
	return lf, nil
}

// encodeSlot writes one slot into dst (lockSlot bytes): the magic line,
// "key value" lines, a checksum of all that, and padding.
func encodeSlot(dst []byte, fields [][2]string) error {
	b := []byte(lockMagic)
	for _, f := range fields {
		b = append(append(append(append(b, f[0]...), ' '), f[1]...), '\n')
	}
	b = fmt.Appendf(b, "sum %08x\n", crc32.ChecksumIEEE(b))
	if len(b) >= lockSlot {
		// Names are bounded (a member name quotes to under 600 bytes).
		return fmt.Errorf("lock record of %d bytes does not fit its %d-byte slot", len(b), lockSlot)
	}
	n := copy(dst[:lockSlot], b)
	for i := n; i < lockSlot-1; i++ {
		dst[i] = ' '
	}
	dst[lockSlot-1] = '\n'
	return nil
}

// parseSlot parses one slot; false if its checksum fails.
func parseSlot(b []byte) (map[string]string, bool) {
	i := bytes.Index(b, []byte("\nsum "))
	if i < 0 || i+14 > len(b) || b[i+13] != '\n' || !bytes.HasPrefix(b, []byte(lockMagic)) {
		return nil, false
	}
	sum, err := strconv.ParseUint(string(b[i+5:i+13]), 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE(b[:i+1]) {
		return nil, false
	}
	fields := make(map[string]string, 5)
	for rest := b[len(lockMagic) : i+1]; len(rest) > 0; {
		line, tail, _ := bytes.Cut(rest, []byte("\n"))
		k, v, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			return nil, false
		}
		fields[string(k)] = string(v)
		rest = tail
	}
	return fields, true
}

func (r lockRecord) fields(boot string) [][2]string {
	f := [][2]string{{"token", strconv.FormatUint(uint64(r.token), 10)}, {"boot", boot}}
	if r.session != "" {
		f = append(f,
			[2]string{"session", r.session},
			[2]string{"member", strconv.Quote(r.member)},
			[2]string{"ttl", strconv.FormatInt(int64(r.ttl), 10)})
	}
	return f
}

func ceilingFields(c driver.Token) [][2]string {
	return [][2]string{{"ceiling", strconv.FormatUint(uint64(c), 10)}}
}

// lockFields reads a current record's fields (both formats).
func lockFields(f map[string]string) (lockRecord, error) {
	var r lockRecord
	tok, err := strconv.ParseUint(f["token"], 10, 64)
	if err != nil {
		return r, errGarbage
	}
	r.token = driver.Token(tok)
	sid, held := f["session"]
	if !held {
		return r, nil
	}
	r.session = sid
	if !isSessionID(sid) {
		return r, errGarbage
	}
	if r.member, err = strconv.Unquote(f["member"]); err != nil {
		return r, errGarbage
	}
	if r.ttl, err = parseTTL(f["ttl"]); err != nil {
		return r, err
	}
	return r, nil
}

func parseLockV1(b []byte) (lockRecord, error) {
	f, _, err := parseRecord("lock", b)
	if err != nil {
		return lockRecord{}, err
	}
	return lockFields(f)
}

// readLockFile reads the lock file at p; a missing one is (_, false, nil).
// A slot 0 that reads torn is read again a few times (a writer may be
// rewriting it); one that stays torn was torn by a power cut: the lock is
// free, and its last token is the ceiling's.
func readLockFile(p string) (lf lockState, exists bool, err error) {
	for range 5 {
		b, err := readFile(p)
		if err != nil || b == nil {
			return lockState{}, false, err
		}
		lf, err = parseLockFile(b)
		if !errors.Is(err, errTorn) {
			return lf, true, err
		}
	}
	return lf, true, nil
}

// lockHandle is a lock file opened for a read-modify-write under the
// flock.
type lockHandle struct {
	path string
	f    *os.File // nil: the file does not exist
	lf   lockState
	buf  [lockFileSize + 1]byte // one byte more: see openLock
}

// openLock opens and reads lock name's file for a change. Caller holds the
// flock, and closes the handle.
func (s *session) openLock(name string) (*lockHandle, error) {
	h := handles.Get().(*lockHandle)
	h.path, h.f, h.lf = s.path(locksDir, name), nil, lockState{}
	f, err := openFile(h.path, os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return h, nil
	case errors.Is(err, syscall.EISDIR):
		handles.Put(h)
		return nil, errGarbage
	case err != nil:
		handles.Put(h)
		return nil, err
	}
	h.f = f
	// One byte more than a lock file has: a longer file is not muster's.
	n, err := f.ReadAt(h.buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		h.close()
		return nil, err
	}
	h.lf, err = parseLockFile(h.buf[:n])
	if errors.Is(err, errTorn) {
		err = nil // under the flock nobody is rewriting it: a power cut tore it
	}
	if err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// handles keeps lock handles (4 KB each) for reuse.
var handles = sync.Pool{New: func() any { return new(lockHandle) }}

// close closes the file and gives the handle back: h is not used after.
func (h *lockHandle) close() {
	if h.f != nil {
		_ = h.f.Close()
	}
	h.path, h.f, h.lf = "", nil, lockState{}
	handles.Put(h)
}

// put writes rec as the current record. With issue (a new token), the
// ceiling is first raised if rec.token is above it, and durably so when
// syncLocks is set, before put returns.
func (s *session) put(h *lockHandle, rec lockRecord, issue bool) error {
	lf := h.lf
	if !lf.slotted {
		// New, or format 1: write the whole file, durable (a new file's
		// ceiling must be), and rename it into place.
		c := max(lf.ceiling, rec.token+ceilingStep-1)
		if err := errors.Join(
			encodeSlot(h.buf[:lockSlot], rec.fields(s.host.boot)),
			encodeSlot(h.buf[lockSlot:2*lockSlot], ceilingFields(c)),
			encodeSlot(h.buf[2*lockSlot:], ceilingFields(c)),
		); err != nil {
			return err
		}
		if err := s.write(h.path, h.buf[:lockFileSize], syncLocks); err != nil {
			return err
		}
		h.lf = lockState{cur: rec, boot: s.host.boot, ceiling: c, spare: 1, slotted: true}
		return nil
	}
	raise := issue && rec.token > lf.ceiling
	if raise {
		c := rec.token + ceilingStep - 1
		off := lf.spare * lockSlot
		if err := encodeSlot(h.buf[off:off+lockSlot], ceilingFields(c)); err != nil {
			return err
		}
		if _, err := h.f.WriteAt(h.buf[off:off+lockSlot], int64(off)); err != nil {
			return err
		}
		h.lf.ceiling, h.lf.spare = c, 3-lf.spare
	}
	if err := encodeSlot(h.buf[:lockSlot], rec.fields(s.host.boot)); err != nil {
		return err
	}
	if _, err := h.f.WriteAt(h.buf[:lockSlot], 0); err != nil {
		return err
	}
	h.lf.cur, h.lf.boot = rec, s.host.boot
	if raise && syncLocks {
		return unix.Fdatasync(int(h.f.Fd()))
	}
	return nil
}
