package memcached

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/musterhq/muster/servicegroup/driver"
)

// Keys. The first four are tooz's (tooz/drivers/memcached.py); the rest
// are muster's own and tooz never reads them.
const (
	groupPrefix    = "_TOOZ_GROUP_" // + group: the group record
	groupListKey   = "_TOOZ_GROUP_LIST"
	memberPrefix   = "_TOOZ_MEMBER_" // + member: tooz's liveness key
	lockPrefix     = "__TOOZ_LOCK_"  // + lock name: the holder
	leaderPrefix   = "_TOOZ_GROUP_LEADER_"
	tokenPrefix    = "_MUSTER_TOKEN_"    // + lock name: last fencing token
	sessionPrefix  = "_MUSTER_SESSION_"  // + session id: muster's liveness key
	instancePrefix = "_MUSTER_INSTANCE_" // + hash of the instance: its session
	downPrefix     = "_MUSTER_DOWN_"     // + group: forced-down members
)

// Flags as tooz's serializer sets them: 1 raw bytes, 2 msgpack.
const (
	flagRaw     = 1
	flagMsgpack = 2
)

// maxKey is memcached's longest key.
const maxKey = 250

// keyName turns a name into its part of a key. Memcached keys cannot hold
// a space; names cannot hold '/', so a space becomes '/' and the mapping
// stays one to one. Every other valid name is used as it is, as tooz does.
func keyName(name string) string { return strings.ReplaceAll(name, " ", "/") }

func groupKey(g string) string    { return groupPrefix + keyName(g) }
func memberKey(m string) string   { return memberPrefix + keyName(m) }
func lockKey(n string) string     { return lockPrefix + keyName(n) }
func tokenKey(n string) string    { return tokenPrefix + keyName(n) }
func downKey(g string) string     { return downPrefix + keyName(g) }
func sessionKey(id string) string { return sessionPrefix + id }
func instanceKey(inst string) string {
	sum := sha256.Sum256([]byte(inst))
	return instancePrefix + hex.EncodeToString(sum[:16])
}

// checkGroup adds the memcached layout's own limits to the central ones:
// a group called "LIST" would be tooz's group list, and "LEADER_x" tooz's
// leader record of group x.
func checkGroup(g string) error {
	if err := driver.ValidateName("group", g); err != nil {
		return err
	}
	if g == "LIST" || strings.HasPrefix(g, "LEADER_") {
		return fmt.Errorf("%w: group %q: its key would be one of tooz's own records on memcached", driver.ErrInvalidName, g)
	}
	if maxPrefix+len(groupKey(g)) > maxKey {
		return fmt.Errorf("%w: group %q: key longer than %d bytes", driver.ErrInvalidName, g, maxKey)
	}
	return nil
}

func checkLock(n string) error {
	// The core's election locks are a reserved prefix and a group name.
	base := n
	if rest, ok := strings.CutPrefix(n, driver.ElectionLock("")); ok {
		base = rest
	}
	if err := driver.ValidateName("lock", base); err != nil {
		return err
	}
	if maxPrefix+len(tokenKey(n)) > maxKey || maxPrefix+len(lockKey(n)) > maxKey {
		return fmt.Errorf("%w: lock %q: key longer than %d bytes", driver.ErrInvalidName, n, maxKey)
	}
	return nil
}

// entry is one member in a group record: tooz's {b"capabilities": ...}
// plus the session that joined it (absent when tooz joined it).
type entry struct {
	caps    []byte // msgpack of the capabilities value; nil: none
	session string
	extra   map[string]msgpack.RawMessage // other fields, kept as they are
}

// groupRecord is the decoded value of a group key, in its order.
type groupRecord struct {
	ids     []string
	entries map[string]*entry
}

var errNoGroup = errors.New("no group record")

// decodeGroup reads a group record; a nil value (tooz's half-deleted
// group) is errNoGroup.
func decodeGroup(b []byte) (*groupRecord, error) {
	dec, n, err := openGroup(b)
	if err != nil {
		return nil, err
	}
	g := &groupRecord{entries: make(map[string]*entry, n)}
	for range n {
		id, err := decodeName(dec)
		if err != nil {
			return nil, fmt.Errorf("group record: member id: %w", err)
		}
		e, err := decodeEntry(dec, id)
		if err != nil {
			return nil, err
		}
		if _, dup := g.entries[id]; !dup {
			g.ids = append(g.ids, id)
		}
		g.entries[id] = e
	}
	return g, nil
}

// findEntry reads the entry of one member from a group record, as
// decodeGroup would (the last of duplicates), skipping the others
// undecoded; nil when it has none. A nil value is errNoGroup.
func findEntry(b []byte, id string) (*entry, error) {
	dec, n, err := openGroup(b)
	if err != nil {
		return nil, err
	}
	var found *entry
	for range n {
		name, err := decodeName(dec)
		if err != nil {
			return nil, fmt.Errorf("group record: member id: %w", err)
		}
		if name != id {
			if err := dec.Skip(); err != nil {
				return nil, fmt.Errorf("group record: member %q: %w", name, err)
			}
			continue
		}
		if found, err = decodeEntry(dec, id); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// openGroup starts reading a group record: a decoder at its first entry
// and the number of entries.
func openGroup(b []byte) (*msgpack.Decoder, int, error) {
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	code, err := dec.PeekCode()
	if err != nil {
		return nil, 0, fmt.Errorf("group record: %w", err)
	}
	if code == msgpcode.Nil {
		return nil, 0, errNoGroup
	}
	n, err := dec.DecodeMapLen()
	if err != nil {
		return nil, 0, fmt.Errorf("group record: %w", err)
	}
	return dec, max(n, 0), nil
}

// decodeEntry reads member id's fields.
func decodeEntry(dec *msgpack.Decoder, id string) (*entry, error) {
	e := &entry{}
	fields, err := dec.DecodeMapLen()
	if err != nil {
		return nil, fmt.Errorf("group record: member %q: %w", id, err)
	}
	for range max(fields, 0) {
		k, err := decodeName(dec)
		if err != nil {
			return nil, fmt.Errorf("group record: member %q: %w", id, err)
		}
		raw, err := dec.DecodeRaw()
		if err != nil {
			return nil, fmt.Errorf("group record: member %q: %w", id, err)
		}
		switch k {
		case "capabilities":
			e.caps = capsFromRaw(raw)
		case "session":
			_ = msgpack.Unmarshal(raw, &e.session)
		default:
			if e.extra == nil {
				e.extra = map[string]msgpack.RawMessage{}
			}
			e.extra[k] = append(msgpack.RawMessage(nil), raw...)
		}
	}
	return e, nil
}

// capsFromRaw keeps a capabilities value as msgpack; tooz's default b""
// and nil mean none.
func capsFromRaw(raw []byte) []byte {
	switch {
	case len(raw) == 0:
		return nil
	case raw[0] == msgpcode.Nil:
		return nil
	case len(raw) == 2 && (raw[0] == msgpcode.Bin8 && raw[1] == 0):
		return nil
	case raw[0] == msgpcode.FixedStrLow: // empty str
		return nil
	}
	return append([]byte(nil), raw...)
}

// decodeName reads a str or bin (tooz writes bin, but accept both).
func decodeName(dec *msgpack.Decoder) (string, error) {
	code, err := dec.PeekCode()
	if err != nil {
		return "", err
	}
	if msgpcode.IsString(code) || msgpcode.IsBin(code) {
		b, err := dec.DecodeBytes() // without DecodeInterface's boxing
		return string(b), err
	}
	v, err := dec.DecodeInterface()
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	}
	return "", fmt.Errorf("a %T, not a name", v)
}

// emptyCaps is tooz's default capabilities value, b"".
var emptyCaps = []byte{msgpcode.Bin8, 0}

// encode writes the record as tooz does: member ids and field names as
// bin, capabilities as the msgpack value itself.
func (g *groupRecord) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeMapLen(len(g.ids)); err != nil {
		return nil, err
	}
	for _, id := range g.ids {
		e := g.entries[id]
		n := 1 + len(e.extra)
		if e.session != "" {
			n++
		}
		_ = enc.EncodeBytes([]byte(id))
		_ = enc.EncodeMapLen(n)
		_ = enc.EncodeBytes([]byte("capabilities"))
		caps := e.caps
		if len(caps) == 0 {
			caps = emptyCaps
		}
		buf.Write(caps)
		if e.session != "" {
			_ = enc.EncodeBytes([]byte("session"))
			_ = enc.EncodeString(e.session)
		}
		for k, v := range e.extra {
			_ = enc.EncodeBytes([]byte(k))
			buf.Write(v)
		}
	}
	return buf.Bytes(), nil
}

func (g *groupRecord) remove(id string) {
	if _, ok := g.entries[id]; !ok {
		return
	}
	delete(g.entries, id)
	for i, x := range g.ids {
		if x == id {
			g.ids = append(g.ids[:i], g.ids[i+1:]...)
			break
		}
	}
}

func (g *groupRecord) put(id string, e *entry) {
	if _, ok := g.entries[id]; !ok {
		g.ids = append(g.ids, id)
	}
	g.entries[id] = e
}

// emptyGroup is tooz's new group: an empty map.
var emptyGroup = []byte{msgpcode.FixedMapLow}

// sessionRecord is the value of a session key.
type sessionRecord struct {
	Member string `msgpack:"member"`
	// Stamp is the server's time of the last renewal (ns since the epoch;
	// seconds from memcached's clock, see stamp).
	Stamp int64 `msgpack:"stamp"`
	// Expiry is the key's expiry in seconds, for a tombstone's.
	Expiry int32 `msgpack:"expiry"`
	// Ended marks a tombstone: the session was ended by a later session
	// of its instance, and whatever it holds is free.
	Ended bool `msgpack:"ended,omitempty"`
}

// lockRecord is the value of a lock key taken by muster. Tooz writes its
// member id there, raw.
type lockRecord struct {
	Member  string `msgpack:"member"`
	Session string `msgpack:"session"`
	Token   uint64 `msgpack:"token"`
}

// decodeLock reads a lock key's value; a tooz holder has only a member.
func decodeLock(flags uint32, b []byte) lockRecord {
	if flags == flagMsgpack {
		var r lockRecord
		if err := msgpack.Unmarshal(b, &r); err == nil && r.Member != "" {
			return r
		}
		var s any
		if err := msgpack.Unmarshal(b, &s); err == nil {
			switch x := s.(type) {
			case string:
				return lockRecord{Member: x}
			case []byte:
				return lockRecord{Member: string(x)}
			}
		}
	}
	return lockRecord{Member: string(b)}
}

// decodeNames reads a msgpack list of names (the group list, the
// forced-down marks).
func decodeNames(b []byte) ([]string, error) {
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, max(n, 0))
	for range max(n, 0) {
		s, err := decodeName(dec)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// encodeNames writes names as tooz writes its group list: bin strings.
func encodeNames(names []string) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(len(names))
	for _, n := range names {
		_ = enc.EncodeBytes([]byte(n))
	}
	return buf.Bytes()
}
