package file

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/musterhq/muster/servicegroup/driver"
)

// Records are a header of "key value" lines after a "muster <kind> 1"
// line, a blank line, then an opaque payload (a member's capabilities,
// stored as they came). Values never hold a newline: names cannot, and free
// text (the instance) is quoted.

var errGarbage = errors.New("unparseable record")

func encodeRecord(kind string, fields [][2]string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("muster " + kind + " 1\n")
	for _, f := range fields {
		b.WriteString(f[0] + " " + f[1] + "\n")
	}
	b.WriteByte('\n')
	b.Write(payload)
	return b.Bytes()
}

func parseRecord(kind string, b []byte) (map[string]string, []byte, error) {
	head, payload, ok := bytes.Cut(b, []byte("\n\n"))
	if !ok {
		return nil, nil, errGarbage
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != "muster "+kind+" 1" {
		return nil, nil, errGarbage
	}
	fields := make(map[string]string, len(lines)-1)
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, " ")
		if !ok {
			return nil, nil, errGarbage
		}
		fields[k] = v
	}
	if len(payload) == 0 {
		payload = nil
	}
	return fields, payload, nil
}

func parseTTL(s string) (time.Duration, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errGarbage
	}
	return time.Duration(n), nil
}

// sessionRecord is the content of sessions/<id>: who, on which host and
// boot, then as payload its last renewal (see renewal), which Heartbeat
// rewrites in place.
type sessionRecord struct {
	member   string
	instance string
	ttl      time.Duration
	pid      int
	host     string // host name
	boot     string // boot id
	pidNS    string // the pid namespace of pid
	renewal  []byte
}

func (r sessionRecord) encode() []byte {
	return encodeRecord("session", [][2]string{
		{"member", strconv.Quote(r.member)},
		{"instance", strconv.Quote(r.instance)},
		{"ttl", strconv.FormatInt(int64(r.ttl), 10)},
		{"pid", strconv.Itoa(r.pid)},
		{"host", strconv.Quote(r.host)},
		{"boot", r.boot},
		{"pidns", strconv.Quote(r.pidNS)},
	}, r.renewal)
}

func parseSession(b []byte) (sessionRecord, error) {
	f, payload, err := parseRecord("session", b)
	if err != nil {
		return sessionRecord{}, err
	}
	var r sessionRecord
	if r.member, err = strconv.Unquote(f["member"]); err != nil {
		return r, errGarbage
	}
	if r.instance, err = strconv.Unquote(f["instance"]); err != nil {
		return r, errGarbage
	}
	if r.ttl, err = parseTTL(f["ttl"]); err != nil {
		return r, err
	}
	if r.host, err = strconv.Unquote(f["host"]); err != nil {
		return r, errGarbage
	}
	r.boot = f["boot"]
	r.pidNS, _ = strconv.Unquote(f["pidns"])
	r.pid, _ = strconv.Atoi(f["pid"]) // informational only
	r.renewal = payload
	return r, nil
}

// memberRecord is the content of groups/<group>/<member>. It carries its
// session's TTL so a reader judges it with one stat of the session file.
type memberRecord struct {
	session string
	ttl     time.Duration
	caps    []byte
}

func (r memberRecord) encode() []byte {
	return encodeRecord("member", [][2]string{
		{"session", r.session},
		{"ttl", strconv.FormatInt(int64(r.ttl), 10)},
	}, r.caps)
}

func parseMember(b []byte) (memberRecord, error) {
	f, payload, err := parseRecord("member", b)
	if err != nil {
		return memberRecord{}, err
	}
	r := memberRecord{session: f["session"], caps: payload}
	if !isSessionID(r.session) {
		return r, errGarbage
	}
	if r.ttl, err = parseTTL(f["ttl"]); err != nil {
		return r, err
	}
	return r, nil
}

// checkName refuses a name that could not be one file name inside its
// directory. The core validates names first (driver.ValidateName); this is
// defence in depth, and lets internal lock names (driver.ReservedPrefix +
// "election." + group) run longer than driver.MaxNameLen, up to the 255
// bytes a file name may have.
func checkName(kind, name string) error {
	limit := driver.MaxNameLen
	if kind == "lock" && strings.HasPrefix(name, driver.ReservedPrefix) {
		limit = maxFileName
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: %s %q: %s", driver.ErrInvalidName, kind, name, why)
	}
	switch {
	case name == "":
		return fmt.Errorf("%w: %s name is empty", driver.ErrInvalidName, kind)
	case len(name) > limit:
		return bad(fmt.Sprintf("longer than %d bytes", limit))
	case name == "." || name == "..":
		return bad("not a usable name")
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	}
	if err := driver.ValidateName(kind, name); err != nil && len(name) <= driver.MaxNameLen {
		return err
	}
	for _, r := range name { // what ValidateName checks, past its length limit
		if r == 0 || r == '/' || r == '\\' || r < 0x20 || r == 0x7f {
			return bad("contains a character a file name cannot hold")
		}
	}
	return nil
}

const maxFileName = 255
