package memcached_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/musterhq/muster/servicegroup/driver"
)

// toozGroup is a group record as tooz writes it: member id (bin) ->
// {b"capabilities": value}, with no session.
func toozGroup(t *testing.T, caps map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	must(t, enc.EncodeMapLen(len(caps)), "encode")
	for id, c := range caps {
		must(t, enc.EncodeBytes([]byte(id)), "encode")
		must(t, enc.EncodeMapLen(1), "encode")
		must(t, enc.EncodeBytes([]byte("capabilities")), "encode")
		buf.Write(c)
	}
	return buf.Bytes()
}

// agree checks Member gives for every id what Members lists (ErrNotMember
// for what it does not). A tooz member's UpdatedAt is the server's clock,
// read by each call: the two may fall a second apart.
func agree(t *testing.T, d driver.Driver, g string, ids ...string) {
	t.Helper()
	got := map[string]driver.Member{}
	for _, id := range ids {
		m, err := d.(driver.MemberGetter).Member(bg, g, id)
		switch {
		case err == nil:
			got[id] = m
		case !errors.Is(err, driver.ErrNotMember):
			t.Fatalf("Member(%q, %q): %v", g, id, err)
		}
	}
	ms, err := d.Members(bg, g)
	must(t, err, "members")
	want := map[string]driver.Member{}
	for _, m := range ms {
		want[m.ID] = m
	}
	for _, id := range ids {
		g, w := got[id], want[id]
		if d := w.UpdatedAt.Sub(g.UpdatedAt).Abs(); d == time.Second && g.UpdatedAt.Nanosecond() == 0 {
			g.UpdatedAt = w.UpdatedAt // a tooz member's, read a second apart
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("member %q: Member says %+v; Members lists %+v", id, got[id], want[id])
		}
	}
}

func TestMember(t *testing.T) {
	url := nsURL(t)
	pre := prefixOf(url)
	obs := open(t, url, "obs", time.Minute)
	get := obs.(driver.MemberGetter)
	must(t, obs.CreateGroup(bg, "g"), "create")
	caps, err := driver.EncodeCapabilities(map[string]any{"slots": int64(4)})
	must(t, err, "caps")
	a := open(t, url, "a", time.Minute, "inst-a")
	must(t, a.Join(bg, "g", caps), "join a")
	b := open(t, url, "b", time.Minute)
	must(t, b.Join(bg, "g", nil), "join b")
	must(t, obs.Join(bg, "g", nil), "join obs")
	must(t, obs.SetForcedDown(bg, "g", "b", true), "force down b")
	agree(t, obs, "g", "a", "b", "obs", "never")

	// A new session of b: Member must read its key, not the one it saw.
	must(t, b.Close(bg), "close b")
	agree(t, obs, "g", "b")
	b2 := open(t, url, "b", time.Minute)
	must(t, b2.Join(bg, "g", caps), "join b again")
	must(t, b2.Heartbeat(bg), "heartbeat b")
	agree(t, obs, "g", "b")

	// a's session ended by a later one of its instance: its entry stays
	// in the record but is dead (Member reads it before Members prunes).
	open(t, url, "other", time.Minute, "inst-a")
	if _, err := get.Member(bg, "g", "a"); !errors.Is(err, driver.ErrNotMember) {
		t.Errorf("Member of a ended session: %v; want ErrNotMember", err)
	}
	agree(t, obs, "g", "a")

	// tooz's members, written as tooz writes them: t1 live, t2 whose
	// liveness key has expired.
	mc := memcache.New(need(t).Addr())
	defer mc.Close()
	must(t, mc.Set(&memcache.Item{Key: pre + "_TOOZ_GROUP_tz", Flags: 2,
		Value: toozGroup(t, map[string][]byte{"t1": caps, "t2": {0xc4, 0}})}), "tooz group")
	must(t, mc.Set(&memcache.Item{Key: pre + "_TOOZ_MEMBER_t1", Value: []byte("It's alive!"), Flags: 1}), "tooz member")
	m, err := get.Member(bg, "tz", "t1")
	must(t, err, "Member of tooz's member")
	if !bytes.Equal(m.Capabilities, caps) || m.UpdatedAt.IsZero() || time.Since(m.UpdatedAt) > time.Minute {
		t.Errorf("tooz's member read as %+v; want its capabilities, updated by the server's now", m)
	}
	agree(t, obs, "tz", "t1", "t2")

	for _, c := range []struct {
		g, m string
		want error
	}{
		{"missing", "a", driver.ErrGroupNotFound},
		{"g", "a/b", driver.ErrInvalidName},
		{"LIST", "a", driver.ErrInvalidName},
		{"", "a", driver.ErrInvalidName},
	} {
		if _, err := get.Member(bg, c.g, c.m); !errors.Is(err, c.want) {
			t.Errorf("Member(%q, %q): %v; want %v", c.g, c.m, err, c.want)
		}
	}
	must(t, obs.Close(bg), "close")
	if _, err := get.Member(bg, "g", "b"); !errors.Is(err, driver.ErrClosed) {
		t.Errorf("Member after Close: %v; want ErrClosed", err)
	}
}
