package file_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Liveness follows the boot clock, which wall-clock steps do not move: a
// step of an hour either way expires nobody and revives nobody; only the
// boot clock passing the TTL does (issue 13, item 10).
func TestWallClockSteps(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "a", 2*time.Second)
	obs := open(t, dir, "obs", long)
	must(t, a.CreateGroup(bg, "g"), "create")
	must(t, a.Join(bg, "g", nil), "join")
	for _, step := range []time.Duration{time.Hour, -time.Hour} {
		undo := file.StepClocks(0, step)
		must(t, a.Heartbeat(bg), "heartbeat after a wall-clock step of "+step.String())
		ms, err := obs.Members(bg, "g")
		if err != nil || len(ms) != 1 || ms[0].ID != "a" {
			undo()
			t.Fatalf("after a wall-clock step of %v: members %v, %v; want a", step, ms, err)
		}
		if d := time.Until(ms[0].UpdatedAt) - step; d > time.Minute || d < -time.Minute {
			t.Errorf("UpdatedAt %v after a step of %v: it should follow the wall clock", ms[0].UpdatedAt, step)
		}
		undo()
	}
	// The boot clock passing the TTL without a renewal ends the session.
	undo := file.StepClocks(3*time.Second, 0)
	defer undo()
	if ms, err := obs.Members(bg, "g"); err != nil || len(ms) != 0 {
		t.Fatalf("2 s TTL, boot clock 3 s on: members %v, %v; want none", ms, err)
	}
	if err := a.Heartbeat(bg); !errors.Is(err, driver.ErrSessionLost) {
		t.Fatalf("heartbeat past the TTL by the boot clock: %v; want ErrSessionLost", err)
	}
}

// editSession rewrites one header line of every session file of member.
func editSession(t *testing.T, dir, member, field, value string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "sessions"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^` + field + ` .*$`)
	for _, e := range entries {
		p := filepath.Join(dir, "sessions", e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "member \""+member+"\"") {
			continue
		}
		if err := os.WriteFile(p, re.ReplaceAll(b, []byte(field+" "+value)), 0o660); err != nil {
			t.Fatal(err)
		}
	}
}

// A session file from an earlier boot is dead; one from another host is an
// error naming it, never judged by a clock it cannot compare.
func TestOtherBootAndHost(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "a", long)
	obs := open(t, dir, "obs", long)
	must(t, a.CreateGroup(bg, "g"), "create")
	must(t, a.Join(bg, "g", nil), "join")
	// Another host name on this kernel (a container): judged as any other.
	editSession(t, dir, "a", "host", `"container-1"`)
	if ms, err := obs.Members(bg, "g"); err != nil || len(ms) != 1 {
		t.Fatalf("members with a session of a container on this kernel: %v, %v; want a", ms, err)
	}
	// Another host name and another boot: perhaps another host.
	editSession(t, dir, "a", "boot", "00000000-0000-0000-0000-000000000000")
	if _, err := obs.Members(bg, "g"); err == nil || !strings.Contains(err.Error(), `host "container-1"`) {
		t.Fatalf("members with a session of another host: %v; want an error naming it", err)
	}
	// This host's name, another boot: an earlier boot, dead.
	h, _ := os.Hostname()
	editSession(t, dir, "a", "host", `"`+h+`"`)
	if ms, err := obs.Members(bg, "g"); err != nil || len(ms) != 0 {
		t.Fatalf("members with a session of an earlier boot: %v, %v; want none", ms, err)
	}
	if err := a.Heartbeat(bg); !errors.Is(err, driver.ErrSessionLost) {
		t.Fatalf("heartbeat of a session from an earlier boot: %v; want ErrSessionLost", err)
	}
}

// A directory of an older format (1: liveness by mtimes; 2: lock records
// written whole) is upgraded when none of its sessions is left, and
// refused, untouched, while one is. Its lock records keep counting.
func TestUpgradeOlderFormats(t *testing.T) {
	for _, format := range []string{"muster-file 1\n", "muster-file 2\n"} {
		t.Run(strings.Fields(format)[1], func(t *testing.T) {
			dir := t.TempDir()
			must(t, os.WriteFile(filepath.Join(dir, "format"), []byte(format), 0o660), "marker")
			for _, d := range []string{"sessions", "locks"} {
				must(t, os.Mkdir(filepath.Join(dir, d), 0o770), d)
			}
			old := filepath.Join(dir, "sessions", strings.Repeat("ab", 16))
			must(t, os.WriteFile(old, []byte("muster session 1\nmember \"x\"\n\n"), 0o660), "old session")
			must(t, os.WriteFile(filepath.Join(dir, "locks", "L"), []byte("muster lock 1\ntoken 41\n\n"), 0o660), "old lock")
			_, err := file.Open(bg, driver.Options{URL: "file://" + dir, Member: "m", TTL: long})
			if err == nil || !strings.Contains(err.Error(), "older muster") {
				t.Fatalf("open with an old session present: %v; want a refusal naming the older muster", err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "format")); string(b) != format {
				t.Fatalf("the refused directory's marker became %q", b)
			}
			must(t, os.Remove(old), "remove the old session")
			d := open(t, dir, "m", long)
			if b, _ := os.ReadFile(filepath.Join(dir, "format")); string(b) != "muster-file 3\n" {
				t.Fatalf("marker after the upgrade %q; want muster-file 3", b)
			}
			if tok, err := d.TryLock(bg, "L"); err != nil || tok != 42 {
				t.Fatalf("lock over the old free record: token %d, %v; want 42", tok, err)
			}
		})
	}
}
