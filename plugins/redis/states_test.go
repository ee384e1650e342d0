package redis_test

import (
	"context"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/musterhq/muster/plugins/redis"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestMemberStatesLiveness: MemberStates, which reads beat keys outside a
// script, judges liveness as Members' script does. A muster member whose
// beat key another session of its id has taken is live while its own
// session is; a tooz member is live while its beat key is. Members found
// dead are pruned from the group, with a left event.
func TestMemberStatesLiveness(t *testing.T) {
	ctx := context.Background()
	url := nsURL(t)
	ns := namespace(url)
	raw := goredis.NewClient(&goredis.Options{Addr: server(t).Addr()})
	defer raw.Close()
	open := func(member string) driver.Driver {
		d, err := redis.Open(ctx, driver.Options{URL: url, Member: member, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close(ctx) })
		return d
	}
	obs := open("obs")
	if err := obs.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	events, _, err := obs.(driver.Watcher).Watch(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	a := open("m")
	if err := a.Join(ctx, "g", []byte{0x81, 0xa1, 'k', 0x01}); err != nil {
		t.Fatal(err)
	}
	open("m") // a second session of m: m's beat key now names it, not a
	if err := obs.SetForcedDown(ctx, "g", "m", true); err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, ns+"_group:g", "tz", "\x80").Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.Set(ctx, ns+"_beats:tz", "tooz", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	states := func() map[string]driver.Member {
		t.Helper()
		got, err := obs.(driver.StateLister).MemberStates(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		ms, err := obs.Members(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]driver.Member{}
		for _, m := range got {
			byID[m.ID] = m
		}
		if len(byID) != len(ms) {
			t.Fatalf("MemberStates %v; Members %v", got, ms)
		}
		for _, m := range ms {
			s, ok := byID[m.ID]
			if !ok || !slices.Equal(s.Capabilities, m.Capabilities) || s.ForcedDown != m.ForcedDown || !s.UpdatedAt.IsZero() {
				t.Fatalf("MemberStates %v; Members %v", got, ms)
			}
		}
		return byID
	}
	if got := states(); len(got) != 2 || !got["m"].ForcedDown || string(got["m"].Capabilities) != "\x81\xa1k\x01" || got["tz"].ForcedDown {
		t.Fatalf("both members live, m marked: %v", got)
	}

	// Each dies without leaving: a's session record and tz's beat key go,
	// as when they expire. The next MemberStates must see both dead, and
	// prune them itself (Members above would prune them too, so it is not
	// asked first).
	if err := raw.Del(ctx, ns+"_muster:s:"+a.(interface{ SessionID() string }).SessionID(), ns+"_beats:tz").Err(); err != nil {
		t.Fatal(err)
	}
	got, err := obs.(driver.StateLister).MemberStates(ctx, "g")
	if err != nil || len(got) != 0 {
		t.Fatalf("MemberStates after both died: %v, %v; want none", got, err)
	}
	for _, m := range []string{"m", "tz"} {
		if n, err := raw.HExists(ctx, ns+"_group:g", m).Result(); err != nil || n {
			t.Errorf("%s's field is still in the group (%v)", m, err)
		}
	}
	left := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for !left["m"] || !left["tz"] {
		select {
		case ev := <-events:
			if ev.Type == driver.Left {
				left[ev.Member] = true
			}
		case <-timeout:
			t.Fatalf("left events seen: %v; want m and tz", left)
		}
	}
	if got := states(); len(got) != 0 {
		t.Fatalf("after pruning: %v", got)
	}
}
