package driver

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest group, member or lock name, in bytes. It leaves
// room for prefixes inside a 255-byte file name or key.
const MaxNameLen = 200

// ReservedPrefix starts the names of muster's internal locks (election
// records); user lock names may not use it.
const ReservedPrefix = "_muster_"

// ValidateName checks a group, member or lock name (kind says which, for the
// message). Names are non-empty UTF-8 of at most MaxNameLen bytes without
// NUL, '/' or other control characters, not "." or "..", and neither only
// whitespace nor starting or ending with it: that
// holds on every backend, so a name valid on one is valid on all.
func ValidateName(kind, name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s %q: %s", ErrInvalidName, kind, name, why)
	}
	switch {
	case name == "":
		return fmt.Errorf("%w: %s name is empty", ErrInvalidName, kind)
	case len(name) > MaxNameLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxNameLen))
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case name == "." || name == "..":
		return bad("not a usable name")
	case strings.TrimSpace(name) == "":
		return bad("only whitespace")
	case strings.TrimSpace(name) != name:
		// "web-1 " and "web-1" would be two members no one can tell apart
		// in a listing.
		return bad("leading or trailing whitespace")
	}
	for _, r := range name {
		switch {
		case r == 0:
			return bad("contains NUL")
		case r == '/' || r == '\\':
			return bad("contains a path separator")
		case r < 0x20 || r == 0x7f:
			return bad("contains a control character")
		}
	}
	return nil
}

// ValidateLockName is ValidateName for a user's lock: it also refuses the
// reserved prefix.
func ValidateLockName(name string) error {
	if err := ValidateName("lock", name); err != nil {
		return err
	}
	if strings.HasPrefix(name, ReservedPrefix) {
		return fmt.Errorf("%w: lock %q: the prefix %q is reserved", ErrInvalidName, name, ReservedPrefix)
	}
	return nil
}

// ElectionLock is the name of the lock that elects group's leader on backends
// without native election.
func ElectionLock(group string) string { return ReservedPrefix + "election." + group }
