package proto_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

// An error that is two things at once crosses the wire as both (issue 13,
// item 14): a lost session's "not member" must make the core wait for the
// new session, not just report ErrNotMember.
func TestErrorCarriesEveryKind(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want []error
	}{
		{"lost and not member", fmt.Errorf("x: %w (%w)", driver.ErrNotMember, driver.ErrSessionLost),
			[]error{driver.ErrNotMember, driver.ErrSessionLost}},
		{"op error, not locked and closed", driver.Errorf("file", "unlock", "l", fmt.Errorf("%w: %w", driver.ErrNotLocked, driver.ErrClosed)),
			[]error{driver.ErrNotLocked, driver.ErrClosed}},
		{"one kind", driver.ErrGroupExists, []error{driver.ErrGroupExists}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			back, ok := proto.FromStatus(proto.ToStatus(tc.err))
			if !ok {
				t.Fatalf("no detail in %v", proto.ToStatus(tc.err))
			}
			if back.Error() != tc.err.Error() {
				t.Errorf("text %q; want %q", back, tc.err)
			}
			for _, w := range tc.want {
				if !errors.Is(back, w) {
					t.Errorf("%v does not match %v after the wire", back, w)
				}
			}
			if errors.Is(back, driver.ErrMemberExists) {
				t.Errorf("%v matches a kind it never had", back)
			}
		})
	}
}
