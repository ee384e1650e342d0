package main

import (
	"errors"
	"strings"

	"github.com/musterhq/muster/servicegroup"
)

// errorText is err as the one line an operator reads: the library's layers
// each add their context, which repeats on the way up ("central agent: join
// "central": file: join "central": ..."), and name Go packages
// ("servicegroup: ") that mean nothing on a command line. It keeps each
// piece of context once, drops package names, and adds a hint where the
// fix is known.
func errorText(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", "; ")
	parts := strings.Split(s, ": ")
	out := make([]string, 0, len(parts))
	seen := map[string]bool{}
	for i, p := range parts {
		switch {
		case p == "servicegroup" && i < len(parts)-1:
			continue
		case seen[p] && strings.Contains(p, `"`):
			// An operation on a name ("join "central"") said again by a
			// lower layer.
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	s = strings.Join(out, ": ")
	if errors.Is(err, servicegroup.ErrNotLinked) {
		// The library's advice (import its package) is not the CLI user's.
		s = strings.TrimSuffix(s, " or import its package") + ", or build muster with -tags allbackends"
	}
	if errors.Is(err, servicegroup.ErrMemberExists) {
		s += " (another process with this member id, e.g. a second agent on this host? give each its own --member)"
	}
	return s
}
