package drivertest

import (
	"context"
	"errors"
	"testing"

	"github.com/musterhq/muster/servicegroup/driver"
)

func (s *suite) unsupportedTests() []test {
	return []test{
		{"features declared unsupported return ErrNotSupported", s.testUnsupported},
	}
}

func (s *suite) testUnsupported(t *testing.T) {
	n := 0
	for _, f := range features {
		if s.unsupported[f] {
			s.checkNotSupported(t, f)
			n++
		}
	}
	if n == 0 {
		t.Logf("%s declares every feature supported", s.b.Name)
	}
}

// checkNotSupported checks that every call of f says ErrNotSupported up
// front, on the session and through the core.
func (s *suite) checkNotSupported(t *testing.T, f Feature) {
	t.Helper()
	u := s.b.URL(t)
	ctx := tctx(t)
	d := s.raw(t, u, "raw", longTTL)
	sg := s.open(t, u, "m")
	mustCreate(t, sg, "g")
	if err := sg.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	var calls map[string]func() error
	switch f {
	case Locks:
		calls = map[string]func() error{
			"TryLock":    func() error { _, err := d.TryLock(ctx, "l"); return err },
			"Unlock":     func() error { return d.Unlock(ctx, "l", 1) },
			"LockHolder": func() error { _, err := d.LockHolder(ctx, "l"); return err },
			"TryAcquire": func() error { _, err := sg.Lock("l").TryAcquire(ctx); return err },
			"Acquire": func() error {
				c, cancel := context.WithTimeout(ctx, soon)
				defer cancel()
				_, err := sg.Lock("l").Acquire(c)
				return err
			},
			"ServiceGroup.LockHolder": func() error { _, _, err := sg.LockHolder(ctx, "l"); return err },
		}
	case BreakLock:
		calls = map[string]func() error{
			"BreakLock":              func() error { return d.BreakLock(ctx, "l") },
			"ServiceGroup.BreakLock": func() error { return sg.BreakLock(ctx, "l") },
		}
	case Election:
		calls = map[string]func() error{
			"Campaign": func() error {
				c, cancel := context.WithTimeout(ctx, soon)
				defer cancel()
				_, err := sg.Campaign(c, "g")
				return err
			},
			"Leader": func() error { _, err := sg.Leader(ctx, "g"); return err },
		}
	case ForceDown:
		calls = map[string]func() error{
			"SetForcedDown": func() error { return d.SetForcedDown(ctx, "g", "m", true) },
			"ForceDown":     func() error { return sg.ForceDown(ctx, "g", "m", true) },
		}
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, driver.ErrNotSupported) {
			t.Errorf("%s declared unsupported, but %s: %v; want ErrNotSupported", f, name, err)
		}
	}
	// Whatever is unsupported, membership still works.
	if up, err := sg.IsUp(ctx, "g", "m"); err != nil || !up {
		t.Errorf("IsUp with %s unsupported: %v, %v", f, up, err)
	}
}
