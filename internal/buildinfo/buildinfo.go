// Package buildinfo says which build of muster is running, from what the Go
// toolchain recorded in the binary, so that `muster version` and the agents'
// "version" capability always agree.
package buildinfo

import "runtime/debug"

// Version is the running binary's module version: a release tag, or
// "devel+<commit>" ("-dirty" with uncommitted changes) when built from a
// work tree; "devel" when the build recorded no commit.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, _, dirty := vcs(bi)
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel+" + rev
}

// Commit is the full revision the binary was built from and that commit's
// time (RFC 3339), each empty when the build recorded none (as with
// -buildvcs=false).
func Commit() (revision, time string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", ""
	}
	revision, time, _ = vcs(bi)
	return revision, time
}

func vcs(bi *debug.BuildInfo) (revision, time string, modified bool) {
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			time = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return revision, time, modified
}
