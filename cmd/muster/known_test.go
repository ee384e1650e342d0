package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kill -9 of a joined member leaves its record on the file backend (no
// Close ran): members --all lists it as down, with its capabilities and its
// last renewal; members alone does not list it.
func TestMembersAllListsKilledMember(t *testing.T) {
	b := backendFlags(t, "inprocess")
	start(t, append(b, "join", "compute", "a")...)
	dead := start(t, append(b, "join", "compute", "b", "--caps", `{"zone":"az2"}`)...)
	eventually(t, 15*time.Second, "both members listed", func() bool {
		return len(membersOf(t, b, "compute")) == 2
	})
	if err := dead.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = dead.Wait() // reaped: the file backend now sees its process gone
	// A long TTL for the listing sessions: a session opening sweeps the
	// sessions of the dead at most once per its TTL, and the joins swept
	// a moment ago, so nothing removes b's record before it is listed.
	// Without --all, Members would remove it: --all goes first.
	all := append(b, "--member-ttl", "1h", "members", "compute", "--all")

	out, stderr, code := muster(t, append(all, "--json")...)
	if code != 0 || stderr != "" {
		t.Fatalf("members --all --json: exit %d, stderr %q", code, stderr)
	}
	var ms []memberJSON
	if err := json.Unmarshal([]byte(out), &ms); err != nil || len(ms) != 2 {
		t.Fatalf("members --all --json: %v: %s", err, out)
	}
	if ms[0].ID != "a" || !ms[0].Up || ms[1].ID != "b" || ms[1].Up || ms[1].ForcedDown {
		t.Fatalf("members --all --json: %s; want a up, b down", out)
	}
	if ms[1].Capabilities["zone"] != "az2" || ms[1].UpdatedAt == nil || ms[1].UpdatedAt.IsZero() {
		t.Errorf("the dead member's record: %+v; want its capabilities and last renewal", ms[1])
	}
	if !strings.Contains(out, `"up":false`) {
		t.Errorf("members --all --json: %s; want \"up\":false", out)
	}

	lines := strings.Split(strings.TrimSpace(mustOut(t, append(all, "--format", "lines")...)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "a\tup\t") || !strings.HasPrefix(lines[1], "b\tdown\t") {
		t.Errorf("members --all lines: %q; want a up, b down", lines)
	}
	tbl := strings.Split(strings.TrimSpace(mustOut(t, append(all, "--format", "table")...)), "\n")
	if len(tbl) != 3 || !strings.HasPrefix(tbl[0], "ID") || strings.Fields(tbl[2])[0] != "b" || strings.Fields(tbl[2])[1] != "down" {
		t.Errorf("members --all table:\n%s", strings.Join(tbl, "\n"))
	}

	live := membersOf(t, b, "compute")
	if _, ok := live["b"]; ok || len(live) != 1 {
		t.Errorf("members without --all: %+v; want a alone", live)
	}
}
