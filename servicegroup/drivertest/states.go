package drivertest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/musterhq/muster/servicegroup/driver"
)

// testMemberStates: a backend's MemberStates (driver.StateLister, what a
// watch's diff and GetAll read) lists exactly what Members lists, with the
// same capabilities and marks, and its MemberState (what IsUp reads) reads
// one member as Member does; only UpdatedAt may be left out. A backend
// without them is read through Members and Member: nothing to check.
func (s *suite) testMemberStates(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	obs := s.raw(t, u, "obs", longTTL)
	l, ok := obs.(driver.StateLister)
	if !ok {
		t.Logf("%s lists no cheaper member states: watches read Members", s.b.Name)
		return
	}
	if _, err := l.MemberStates(ctx, "missing"); !errors.Is(err, driver.ErrGroupNotFound) {
		t.Errorf("MemberStates of a missing group: %v; want ErrGroupNotFound", err)
	}
	if err := obs.CreateGroup(ctx, "g"); err != nil {
		t.Fatalf("create group: %v", err)
	}
	for i, name := range []string{"a", "b", "c"} {
		caps, err := driver.EncodeCapabilities(map[string]any{"host": "compute-" + name, "n": i})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.raw(t, u, name, longTTL).Join(ctx, "g", caps); err != nil {
			t.Fatalf("join %s: %v", name, err)
		}
	}
	if !s.unsupported[ForceDown] {
		if err := obs.SetForcedDown(ctx, "g", "b", true); err != nil {
			t.Fatalf("force down b: %v", err)
		}
	}
	left := s.raw(t, u, "left", longTTL)
	if err := left.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join left: %v", err)
	}
	if err := left.Leave(ctx, "g"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	// Both listings see the same state once the joins and the leave are in.
	eventually(t, soon, func() error {
		full, err := obs.Members(ctx, "g")
		if err != nil {
			return err
		}
		states, err := l.MemberStates(ctx, "g")
		if err != nil {
			return err
		}
		if a, b := summary(full), summary(states); a != b || len(full) != 3 {
			return fmt.Errorf("MemberStates lists %s; Members lists %s (want a, b, c)", b, a)
		}
		// MemberState reads each one as Member does.
		for _, m := range full {
			one, err := l.MemberState(ctx, "g", m.ID)
			if err != nil {
				return fmt.Errorf("MemberState of %q: %v", m.ID, err)
			}
			if a, b := summary([]driver.Member{m}), summary([]driver.Member{one}); a != b {
				return fmt.Errorf("MemberState reads %s; Members lists %s", b, a)
			}
		}
		return nil
	})
	for _, id := range []string{"left", "nobody"} {
		if _, err := l.MemberState(ctx, "g", id); !errors.Is(err, driver.ErrNotMember) {
			t.Errorf("MemberState of %q: %v; want ErrNotMember", id, err)
		}
	}
	if _, err := l.MemberState(ctx, "missing", "a"); !errors.Is(err, driver.ErrGroupNotFound) {
		t.Errorf("MemberState in a missing group: %v; want ErrGroupNotFound", err)
	}
}

// summary is a listing without its UpdatedAt times, in id order.
func summary(ms []driver.Member) string {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b driver.Member) int { return strings.Compare(a.ID, b.ID) })
	var b bytes.Buffer
	for _, m := range ms {
		fmt.Fprintf(&b, "[%s caps=%x down=%v] ", m.ID, m.Capabilities, m.ForcedDown)
	}
	return b.String()
}
