package drivertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

func (s *suite) groupTests() []test {
	return []test{
		{"a created group is listed and creating it again returns ErrGroupExists", s.testCreateGroup},
		{"many groups are all listed", s.testManyGroups},
		{"a thousand groups are all listed", s.testThousandGroups},
		{"deleting a group removes it and joining it afterwards returns ErrGroupNotFound", s.testDeleteGroup},
		{"deleting a missing group returns ErrGroupNotFound and a group with a live member ErrGroupNotEmpty until it leaves", s.testDeleteErrors},
		{"internal records never show up as groups or members", s.testInternalRecords},
	}
}

// groupsAre checks that sg lists exactly want.
func groupsAre(sg *servicegroup.ServiceGroup, want ...string) func() error {
	return func() error {
		got, err := sg.Groups(context.Background())
		if err != nil {
			return err
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			if len(want) > 10 {
				return fmt.Errorf("%d groups listed, want %d", len(got), len(want))
			}
			return fmt.Errorf("groups: %q, want %q", got, want)
		}
		return nil
	}
}

func (s *suite) testCreateGroup(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	if err := groupsAre(b)(); err != nil {
		t.Fatalf("fresh namespace: %v", err)
	}
	mustCreate(t, a, "g")
	for _, sg := range []*servicegroup.ServiceGroup{a, b} {
		if err := groupsAre(sg, "g")(); err != nil {
			t.Errorf("listed by %q: %v", sg.Member(), err)
		}
	}
	if err := a.CreateGroup(ctx, "g"); !errors.Is(err, servicegroup.ErrGroupExists) {
		t.Errorf("creating it again: %v; want ErrGroupExists", err)
	}
	if err := b.CreateGroup(ctx, "g"); !errors.Is(err, servicegroup.ErrGroupExists) {
		t.Errorf("creating it again from another session: %v; want ErrGroupExists", err)
	}
	if err := groupsAre(b, "g")(); err != nil {
		t.Error(err)
	}
}

func (s *suite) testManyGroups(t *testing.T) {
	u := s.b.URL(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	want := []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"}
	for _, g := range want {
		mustCreate(t, a, g)
	}
	if err := groupsAre(b, want...)(); err != nil {
		t.Error(err)
	}
}

func (s *suite) testThousandGroups(t *testing.T) {
	s.slow(t)
	u := s.b.URL(t)
	ctx := tctx(t)
	const n, workers = 1000, 8
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("group-%04d", i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		d := s.raw(t, u, fmt.Sprintf("w%d", w), longTTL)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := d.CreateGroup(ctx, want[i]); err != nil {
					errs <- fmt.Errorf("create %q: %w", want[i], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := groupsAre(s.open(t, u, "reader"), want...)(); err != nil {
		t.Error(err)
	}
}

func (s *suite) testDeleteGroup(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	mustCreate(t, a, "g")
	mustCreate(t, a, "keep")
	if err := b.DeleteGroup(ctx, "g"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := groupsAre(a, "keep")(); err != nil {
		t.Errorf("after delete: %v", err)
	}
	if err := a.Join(ctx, "g", nil); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Errorf("join after delete: %v; want ErrGroupNotFound", err)
	}
	if _, err := a.Members(ctx, "g"); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Errorf("members after delete: %v; want ErrGroupNotFound", err)
	}
	// The name is free again.
	mustCreate(t, b, "g")
	if err := a.Join(ctx, "g", nil); err != nil {
		t.Errorf("join the re-created group: %v", err)
	}
	if err := membersAre(b, "g", "a")(); err != nil {
		t.Error(err)
	}
}

func (s *suite) testDeleteErrors(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	a := s.open(t, u, "a")
	b := s.open(t, u, "b")
	if err := a.DeleteGroup(ctx, "missing"); !errors.Is(err, servicegroup.ErrGroupNotFound) {
		t.Errorf("deleting a missing group: %v; want ErrGroupNotFound", err)
	}
	mustCreate(t, a, "g")
	if err := b.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := a.DeleteGroup(ctx, "g"); !errors.Is(err, servicegroup.ErrGroupNotEmpty) {
		t.Errorf("deleting a group with a live member: %v; want ErrGroupNotEmpty", err)
	}
	if err := membersAre(a, "g", "b")(); err != nil {
		t.Errorf("after the refused delete: %v", err)
	}
	if err := b.Leave(ctx, "g"); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if err := a.DeleteGroup(ctx, "g"); err != nil {
		t.Errorf("deleting the group once its member left: %v", err)
	}
	if err := groupsAre(a)(); err != nil {
		t.Error(err)
	}

	// A member whose session expired is no longer live: it does not keep
	// the group from being deleted.
	mustCreate(t, a, "h")
	z := s.raw(t, u, "z", ttl)
	if err := z.Join(ctx, "h", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	eventually(t, expiry, func() error { return a.DeleteGroup(ctx, "h") })
}

func (s *suite) testInternalRecords(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	d := s.raw(t, u, "m", longTTL)
	if err := d.CreateGroup(ctx, "g"); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := d.Join(ctx, "g", []byte{0x80}); err != nil {
		t.Fatalf("join: %v", err)
	}
	if !s.unsupported[Locks] {
		// A held lock, a released one (its counter stays), and election
		// records, for an existing group and for one that does not exist.
		for _, name := range []string{"held", "g", "m", driver.ElectionLock("g"), driver.ElectionLock("nogroup")} {
			if _, err := d.TryLock(ctx, name); err != nil {
				t.Fatalf("lock %q: %v", name, err)
			}
		}
		tok, err := d.TryLock(ctx, "released")
		if err != nil {
			t.Fatalf("lock: %v", err)
		}
		if err := d.Unlock(ctx, "released", tok); err != nil {
			t.Fatalf("unlock: %v", err)
		}
	}
	if !s.unsupported[ForceDown] {
		// A mark for a member that is not joined.
		if err := d.SetForcedDown(ctx, "g", "ghost", true); err != nil {
			t.Fatalf("force down: %v", err)
		}
	}
	sg := s.open(t, u, "reader")
	if !s.unsupported[Election] {
		if _, err := sg.Campaign(ctx, "elected"); err != nil {
			t.Fatalf("campaign: %v", err)
		}
	}

	gs, err := d.Groups(ctx)
	if err != nil {
		t.Fatalf("groups: %v", err)
	}
	if !slices.Equal(gs, []string{"g"}) {
		t.Errorf("Groups: %q; want [\"g\"]", gs)
	}
	if err := rawMembersAre(d, "g", "m")(); err != nil {
		t.Error(err)
	}
	if err := groupsAre(sg, "g")(); err != nil {
		t.Error(err)
	}
	if err := membersAre(sg, "g", "m")(); err != nil {
		t.Error(err)
	}
	for _, g := range []string{"nogroup", "elected", "held", "released"} {
		if _, err := sg.Members(ctx, g); !errors.Is(err, servicegroup.ErrGroupNotFound) {
			t.Errorf("Members(%q): %v; want ErrGroupNotFound", g, err)
		}
	}
}
