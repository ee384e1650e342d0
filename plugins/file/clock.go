package file

import (
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Liveness is decided by CLOCK_BOOTTIME, which every process on one Linux
// host (in one time namespace) shares and which wall-clock steps do not
// move: a session's file holds the boot time of its last renewal, and a
// reader compares it with its own boot time. The wall clock only dates
// renewals for UpdatedAt. A renewal written during another boot (the host
// rebooted) is dead; one written by another host (the directory is shared
// over a network filesystem) is refused with an error, since the two
// hosts' boot clocks cannot be compared.

// bootNow reads CLOCK_BOOTTIME (plus bootStep, which only tests set).
func bootNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic("file: CLOCK_BOOTTIME: " + err.Error()) // Linux has had it since 2.6.39
	}
	return time.Duration(ts.Nano()) + time.Duration(bootStep.Load())
}

// wallNow dates renewals for UpdatedAt (plus wallStep, which only tests
// set, to prove a wall-clock step changes nothing else).
func wallNow() time.Time { return time.Now().Add(time.Duration(wallStep.Load())) }

var bootStep, wallStep atomic.Int64

// host identifies this boot of this host: its boot id and host name.
type host struct {
	boot string // /proc/sys/kernel/random/boot_id
	name string
}

var (
	thisHostOnce sync.Once
	thisHost     host
	thisHostErr  error
)

func localHost() (host, error) {
	thisHostOnce.Do(func() {
		b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			thisHostErr = fmt.Errorf("file: reading the boot id (liveness is judged by this boot's clock): %w", err)
			return
		}
		name, err := os.Hostname()
		if err != nil {
			thisHostErr = fmt.Errorf("file: host name: %w", err)
			return
		}
		thisHost = host{boot: strings.TrimSpace(string(b)), name: name}
	})
	return thisHost, thisHostErr
}

// A renewal is the payload of a session file: the boot time and wall time
// of the session's last renewal, fixed width so Heartbeat rewrites it in
// place, with a checksum so a reader racing that write reads again rather
// than trusting a torn value.
type renewal struct {
	at   time.Duration // CLOCK_BOOTTIME
	wall time.Time
}

const renewalLen = 20 + 1 + 20 + 1 + 8 + 1

func (r renewal) encode() []byte {
	s := fmt.Sprintf("%020d %020d", int64(r.at), r.wall.UnixNano())
	return fmt.Appendf(nil, "%s %08x\n", s, crc32.ChecksumIEEE([]byte(s)))
}

func parseRenewal(b []byte) (renewal, bool) {
	if len(b) != renewalLen || b[renewalLen-1] != '\n' {
		return renewal{}, false
	}
	body, sum := b[:41], string(b[42:50])
	if fmt.Sprintf("%08x", crc32.ChecksumIEEE(body)) != sum {
		return renewal{}, false
	}
	at, err1 := strconv.ParseInt(string(body[:20]), 10, 64)
	wall, err2 := strconv.ParseInt(string(body[21:]), 10, 64)
	if err1 != nil || err2 != nil {
		return renewal{}, false
	}
	return renewal{at: time.Duration(at), wall: time.Unix(0, wall)}, true
}

// readSession reads a session file: its record and its last renewal. A
// torn renewal (read while Heartbeat rewrote it) is read again. A missing
// file is (_, _, nil, false).
func readSession(p string) (rec sessionRecord, r renewal, exists bool, err error) {
	for range 5 {
		b, err := readFile(p)
		if err != nil || b == nil {
			return rec, r, false, err
		}
		if rec, err = parseSession(b); err != nil {
			return rec, r, true, err
		}
		var ok bool
		if r, ok = parseRenewal(rec.renewal); ok {
			return rec, r, true, nil
		}
	}
	return rec, r, true, errGarbage
}

// ownRenewal reads this session's last renewal through its open file. A
// file that was removed (swept, or ended by a later session of its
// instance) reads as gone; a torn renewal (read while a Heartbeat of this
// session rewrote it) is read again.
func (s *session) ownRenewal() (r renewal, exists bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(s.own.Fd()), &st); err != nil {
		return r, false, err
	}
	if st.Nlink == 0 {
		return r, false, nil
	}
	var b [renewalLen]byte
	for range 5 {
		if _, err := s.own.ReadAt(b[:], s.ownAt); err != nil {
			return r, true, err
		}
		var ok bool
		if r, ok = parseRenewal(b[:]); ok {
			return r, true, nil
		}
	}
	return r, true, errGarbage
}

// sameHost says whether a session record was written during this boot of
// this host's kernel (the boot id is the kernel's, shared by its containers
// whatever their host names), and so can be judged by this boot clock. A
// record of another boot id is dead when it carries this host's name (an
// earlier boot); with another name too it may be another host sharing the
// directory over a network filesystem, whose clock cannot be compared: an
// error naming it.
func sameHost(rec sessionRecord, p string) (thisBoot bool, err error) {
	h, err := localHost()
	if err != nil {
		return false, err
	}
	switch {
	case rec.boot == h.boot:
		return true, nil
	case rec.host == h.name:
		return false, nil
	}
	return false, fmt.Errorf("file: %s was written by host %q during another boot: the file backend coordinates the processes of one host (its liveness clock is that host's boot clock); use a networked backend across hosts, or remove the file if that host is gone", p, rec.host)
}

// pidNS is this process's pid namespace ("pid:[4026531836]"), or "".
var pidNS = sync.OnceValue(func() string {
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return ns
})

// processGone reports whether the process that wrote a session record has
// exited, which only a reader in its pid namespace can tell (a pid that
// was reused reads as alive: then the TTL decides, as without this check).
func processGone(rec sessionRecord) bool {
	if rec.pid <= 0 || rec.pidNS == "" || rec.pidNS != pidNS() {
		return false
	}
	return unix.Kill(rec.pid, 0) == unix.ESRCH
}
