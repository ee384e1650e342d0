package drivertest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

func (s *suite) nameTests() []test {
	return []test{
		{"empty, too long, NUL and path-separator names return ErrInvalidName before reaching the backend", s.testInvalidNames},
		{"UTF-8 and longest names round-trip as group, member and lock names", s.testNamesRoundTrip},
	}
}

// badNames are refused everywhere, whatever the backend.
var badNames = map[string]string{
	"empty":          "",
	"too long":       strings.Repeat("a", driver.MaxNameLen+1),
	"too long UTF-8": strings.Repeat("ü", driver.MaxNameLen/2) + "x",
	"NUL":            "a\x00b",
	"slash":          "a/b",
	"backslash":      `a\b`,
	"dot":            ".",
	"dot-dot":        "..",
	"control":        "a\nb",
	"invalid UTF-8":  "a\xffb",
}

func (s *suite) testInvalidNames(t *testing.T) {
	u := s.b.URL(t)
	ctx := tctx(t)
	rec := &recorder{open: s.b.Open}
	sg := s.openWith(t, u, "m", rec.Open)
	mustCreate(t, sg, "g")
	if err := sg.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}

	for kind, bad := range badNames {
		calls := map[string]func() error{
			"CreateGroup":  func() error { return sg.CreateGroup(ctx, bad) },
			"DeleteGroup":  func() error { return sg.DeleteGroup(ctx, bad) },
			"Join":         func() error { return sg.Join(ctx, bad, nil) },
			"JoinOrCreate": func() error { return sg.JoinOrCreate(ctx, bad, nil) },
			"Leave":        func() error { return sg.Leave(ctx, bad) },
			"Members":      func() error { _, err := sg.Members(ctx, bad); return err },
			"GetAll":       func() error { _, err := sg.GetAll(ctx, bad); return err },
			"SetCapabilities": func() error {
				return sg.SetCapabilities(ctx, bad, servicegroup.Capabilities{"a": 1})
			},
			"IsUp(group)":      func() error { _, err := sg.IsUp(ctx, bad, "m"); return err },
			"IsUp(member)":     func() error { _, err := sg.IsUp(ctx, "g", bad); return err },
			"UpdatedAt(group)": func() error { _, err := sg.UpdatedAt(ctx, bad, "m"); return err },
			"UpdatedAt(member)": func() error {
				_, err := sg.UpdatedAt(ctx, "g", bad)
				return err
			},
			"ForceDown(group)":  func() error { return sg.ForceDown(ctx, bad, "m", true) },
			"ForceDown(member)": func() error { return sg.ForceDown(ctx, "g", bad, true) },
			"Watch":             func() error { _, err := sg.Watch(ctx, bad); return err },
			"Campaign":          func() error { _, err := sg.Campaign(ctx, bad); return err },
			"Leader":            func() error { _, err := sg.Leader(ctx, bad); return err },
			"TryAcquire":        func() error { _, err := sg.Lock(bad).TryAcquire(ctx); return err },
			"Acquire": func() error {
				c, cancel := context.WithTimeout(ctx, soon)
				defer cancel()
				_, err := sg.Lock(bad).Acquire(c)
				return err
			},
			"BreakLock":  func() error { return sg.BreakLock(ctx, bad) },
			"LockHolder": func() error { _, _, err := sg.LockHolder(ctx, bad); return err },
		}
		for call, f := range calls {
			if err := f(); !errors.Is(err, servicegroup.ErrInvalidName) {
				t.Errorf("%s with a %s name %q: %v; want ErrInvalidName", call, kind, bad, err)
			}
		}
	}
	// The reserved prefix of internal locks is not a user's lock name.
	reserved := driver.ElectionLock("g")
	if _, err := sg.Lock(reserved).TryAcquire(ctx); !errors.Is(err, servicegroup.ErrInvalidName) {
		t.Errorf("TryAcquire(%q): %v; want ErrInvalidName", reserved, err)
	}
	if err := sg.BreakLock(ctx, reserved); !errors.Is(err, servicegroup.ErrInvalidName) {
		t.Errorf("BreakLock(%q): %v; want ErrInvalidName", reserved, err)
	}

	// A bad member id is refused before a session is opened.
	opens, _ := rec.seen()
	for kind, bad := range badNames {
		if bad == "" {
			continue // the default member id
		}
		_, err := servicegroup.OpenDriver(ctx, servicegroup.Config{URL: u, Member: bad}, s.b.Name, rec.Open)
		if !errors.Is(err, servicegroup.ErrInvalidName) {
			t.Errorf("OpenDriver with a %s member id %q: %v; want ErrInvalidName", kind, bad, err)
		}
	}
	if now, _ := rec.seen(); now != opens {
		t.Errorf("OpenDriver with invalid member ids opened %d sessions; want none", now-opens)
	}

	_, seen := rec.seen()
	for kind, bad := range badNames {
		if slices.Contains(seen, bad) {
			t.Errorf("a %s name %q reached the backend", kind, bad)
		}
	}
	if slices.Contains(seen, reserved) {
		t.Errorf("the reserved lock name %q reached the backend from a user's call", reserved)
	}
}

func (s *suite) testNamesRoundTrip(t *testing.T) {
	names := map[string]string{
		"UTF-8":          "节点-ü",
		"longest":        strings.Repeat("n", driver.MaxNameLen),
		"longest UTF-8":  strings.Repeat("ü", driver.MaxNameLen/2),
		"punctuation":    "a.b-c_d:e@f+g=h~i j",
		"dotted":         ".hidden",
		"tooz-like name": "_tooz_group",
	}
	for kind, name := range names {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			s.roundTrip(t, name)
		})
	}
}

func (s *suite) roundTrip(t *testing.T, name string) {
	u := s.b.URL(t)
	ctx := tctx(t)
	sg := s.open(t, u, name)
	obs := s.open(t, u, "obs")
	mustCreate(t, sg, name)
	caps := servicegroup.Capabilities{name: name}
	if err := sg.Join(ctx, name, caps); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := groupsAre(obs, name)(); err != nil {
		t.Error(err)
	}
	if err := capsAre(obs, name, name, caps)(); err != nil {
		t.Error(err)
	}
	if up, err := obs.IsUp(ctx, name, name); err != nil || !up {
		t.Errorf("IsUp: %v, %v; want true", up, err)
	}
	w, err := obs.Watch(ctx, name)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	select {
	case ev := <-w.Events():
		if ev.Type != servicegroup.MemberJoined || ev.Group != name || ev.Member != name {
			t.Errorf("first event %+v; want joined %q", ev, name)
		}
	case <-time.After(soon):
		t.Errorf("no event from the watch")
	}
	if !s.unsupported[ForceDown] {
		if err := obs.ForceDown(ctx, name, name, true); err != nil {
			t.Errorf("force down: %v", err)
		} else if up, err := obs.IsUp(ctx, name, name); err != nil || up {
			t.Errorf("IsUp after ForceDown: %v, %v; want false", up, err)
		}
	}
	if !s.unsupported[Locks] {
		tok, err := sg.Lock(name).TryAcquire(ctx)
		if err != nil {
			t.Fatalf("lock: %v", err)
		}
		if m, got, err := obs.LockHolder(ctx, name); err != nil || m != name || got != tok {
			t.Errorf("LockHolder: %q, %d, %v; want %q, %d", m, got, err, name, tok)
		}
	}
	if !s.unsupported[Election] {
		if _, err := sg.Campaign(ctx, name); err != nil {
			t.Fatalf("campaign: %v", err)
		}
		if l, err := obs.Leader(ctx, name); err != nil || l != name {
			t.Errorf("Leader: %q, %v; want %q", l, err, name)
		}
	}
	if err := sg.Leave(ctx, name); err != nil {
		t.Errorf("leave: %v", err)
	}
	if err := obs.DeleteGroup(ctx, name); err != nil {
		t.Errorf("delete: %v", err)
	}
	if err := groupsAre(obs)(); err != nil {
		t.Error(err)
	}
}
