package drivertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// knownLister is d's driver.KnownMemberLister, or nil when d has none (a
// plugin host's session has the method whatever its plugin offers, and
// says ErrUnimplemented then).
func knownLister(ctx context.Context, t *testing.T, d driver.Driver) driver.KnownMemberLister {
	t.Helper()
	l, ok := d.(driver.KnownMemberLister)
	if !ok {
		return nil
	}
	_, err := l.KnownMembers(ctx, "missing")
	switch {
	case errors.Is(err, driver.ErrUnimplemented):
		return nil
	case !errors.Is(err, driver.ErrGroupNotFound):
		t.Errorf("KnownMembers of a missing group: %v; want ErrGroupNotFound", err)
	}
	return l
}

// known lists group through l, by id.
func known(ctx context.Context, l driver.KnownMemberLister, group string) (map[string]driver.KnownMember, error) {
	ms, err := l.KnownMembers(ctx, group)
	if err != nil {
		return nil, err
	}
	out := make(map[string]driver.KnownMember, len(ms))
	for _, m := range ms {
		if _, dup := out[m.ID]; dup {
			return nil, fmt.Errorf("KnownMembers of %q lists %q twice: %+v", group, m.ID, ms)
		}
		out[m.ID] = m
	}
	return out, nil
}

// testKnownMembers: a backend that keeps the records of dead members says
// which of its records are live. Whether a dead record is still there
// depends on the backend's cleanup, so only what it says of the records it
// lists is checked, against what the sessions themselves can prove: a
// session whose Heartbeat succeeds after a listing was live during it, and
// one whose Heartbeat says ErrSessionLost is dead from then on.
func (s *suite) testKnownMembers(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	obs := s.raw(t, u, "obs", longTTL)
	l := knownLister(ctx, t, obs)
	a := s.open(t, u, "a")
	if err := obs.CreateGroup(ctx, "g"); err != nil {
		t.Fatalf("create group: %v", err)
	}
	capsA := servicegroup.Capabilities{"host": "compute-a"}
	if err := a.Join(ctx, "g", capsA); err != nil {
		t.Fatalf("join a: %v", err)
	}
	if l == nil {
		t.Logf("%s keeps no record of dead members: checking the core's fallback", s.b.Name)
		ms, dead, err := a.KnownMembers(ctx, "g")
		if err != nil || dead || len(ms) != 1 || ms[0].ID != "a" || !ms[0].Live || ms[0].State() != servicegroup.StateUp {
			t.Errorf("KnownMembers without the interface: %+v, dead records %v, %v; want [a] live and up, no dead records", ms, dead, err)
		}
		if _, _, err := a.KnownMembers(ctx, "missing"); !errors.Is(err, servicegroup.ErrGroupNotFound) {
			t.Errorf("KnownMembers of a missing group: %v; want ErrGroupNotFound", err)
		}
		return
	}

	zcaps, err := driver.EncodeCapabilities(servicegroup.Capabilities{"host": "compute-z"})
	if err != nil {
		t.Fatal(err)
	}
	z := s.raw(t, u, "z", ttl)
	if err := z.Join(ctx, "g", zcaps); err != nil {
		t.Fatalf("join z: %v", err)
	}
	left := s.raw(t, u, "left", longTTL)
	if err := left.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join left: %v", err)
	}
	if err := left.Leave(ctx, "g"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	forced := !s.unsupported[ForceDown]
	if forced {
		if err := obs.SetForcedDown(ctx, "g", "ghost", true); err != nil {
			t.Fatalf("force down a name that never joined: %v", err)
		}
	}

	// check checks what a listing says of every member; zLive is what z's
	// own session proves (nil: nothing).
	check := func(ms map[string]driver.KnownMember, zLive *bool) {
		t.Helper()
		for id, m := range ms {
			switch id {
			case "a":
			case "z":
				if zLive != nil && m.Live != *zLive {
					t.Errorf("z listed with Live %v; want %v, as its own Heartbeat or the backend's Member read proves", m.Live, *zLive)
				}
				if !bytes.Equal(m.Capabilities, zcaps) {
					t.Errorf("z listed with capabilities %q; want %q (its record's)", m.Capabilities, zcaps)
				}
			case "ghost":
				if !forced || m.Live || !m.ForcedDown {
					t.Errorf("a forced-down name that never joined listed as %+v; want not live, forced down", m)
				}
			default:
				t.Errorf("KnownMembers lists %+v, which is no member (left, or an internal record)", m)
			}
		}
	}
	// a heartbeats through the core: it is listed live, with its record.
	eventually(t, soon, func() error {
		ms, err := known(ctx, l, "g")
		if err != nil {
			return err
		}
		m, ok := ms["a"]
		if !ok || !m.Live || m.ForcedDown || m.UpdatedAt.IsZero() {
			return fmt.Errorf("a, live and heartbeating, listed as %+v (listed: %v); want live, not forced down, with an updated-at", m, ok)
		}
		if got, err := driver.DecodeCapabilities(m.Capabilities); err != nil || got["host"] != "compute-a" {
			return fmt.Errorf("a listed with capabilities %v, %v; want %v", got, err, capsA)
		}
		return nil
	})

	// z, live: a Heartbeat that succeeds after the listing proves it was.
	if err := z.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat z: %v", err)
	}
	ms, err := known(ctx, l, "g")
	if err != nil {
		t.Fatalf("KnownMembers: %v", err)
	}
	if err := z.Heartbeat(ctx); err == nil {
		if _, ok := ms["z"]; !ok {
			t.Errorf("KnownMembers omits z, a live member: %+v", ms)
		}
		live := true
		check(ms, &live)
	} else {
		t.Logf("z expired during the first listing (a loaded machine): %v", err)
		check(ms, nil)
	}

	// z stops heartbeating. Once the backend says z is no live member (z
	// never leaves: only expiry ends it), no later listing may call it
	// live; once a listing calls it dead (or drops it), z's own Heartbeat
	// must agree.
	getter, _ := obs.(driver.MemberGetter)
	eventually(t, expiry, func() error {
		var zLive *bool
		if getter != nil {
			if _, err := getter.Member(ctx, "g", "z"); errors.Is(err, driver.ErrNotMember) {
				zLive = new(bool)
			}
		}
		ms, err := known(ctx, l, "g")
		if err != nil {
			return err
		}
		check(ms, zLive)
		if m, ok := ms["z"]; ok && m.Live {
			return fmt.Errorf("z still listed live")
		}
		return nil
	})
	ms, err = known(ctx, l, "g")
	if err != nil {
		t.Fatalf("KnownMembers: %v", err)
	}
	if err := z.Heartbeat(ctx); !errors.Is(err, driver.ErrSessionLost) {
		t.Errorf("z listed dead or dropped, but its Heartbeat says %v; want ErrSessionLost", err)
	}
	dead := false
	check(ms, &dead)
	if m, ok := ms["z"]; ok {
		t.Logf("z's record outlived its session: %+v", m)
	} else {
		t.Logf("z's record went with its session")
	}
	if _, ok := ms["a"]; !ok || !ms["a"].Live {
		t.Errorf("after z expired, a listed as %+v (listed: %v); want live", ms["a"], ok)
	}

	// The core: the same states, and no dead member among Members.
	sms, withDead, err := a.KnownMembers(ctx, "g")
	if err != nil || !withDead {
		t.Fatalf("core KnownMembers: dead records %v, %v; want the backend's listing", withDead, err)
	}
	for _, m := range sms {
		want := servicegroup.StateDown
		if m.ID == "a" {
			want = servicegroup.StateUp
		}
		if m.State() != want || m.Up() != (want == servicegroup.StateUp) {
			t.Errorf("core KnownMembers: %s is %s (up %v); want %s", m.ID, m.State(), m.Up(), want)
		}
	}
	if _, _, err := a.KnownMembers(ctx, "missing"); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Errorf("core KnownMembers of a missing group: %v; want ErrGroupNotFound", err)
	}
	if err := rawMembersAre(obs, "g", "a")(); err != nil {
		t.Errorf("Members after z expired: %v", err)
	}
}
