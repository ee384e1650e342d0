package file_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/servicegroup/driver"
)

func TestRegistered(t *testing.T) {
	if _, ok := driver.Lookup("file"); !ok {
		t.Fatal(`scheme "file" not registered`)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	must(t, os.WriteFile(regular, nil, 0o600), "write")
	for _, tc := range []struct {
		name, url   string
		ttl         time.Duration
		unavailable bool
	}{
		{"relative", "file://relative/dir", time.Second, false},
		{"opaque", "file:relative", time.Second, false},
		{"other scheme", "redis://localhost", time.Second, false},
		{"query", dirURL(dir) + "?mode=x", time.Second, false},
		{"no TTL", dirURL(dir), 0, false},
		{"under a regular file", dirURL(filepath.Join(regular, "sub")), time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := file.Open(bg, driver.Options{URL: tc.url, Member: "m", TTL: tc.ttl})
			if err == nil {
				_ = d.Close(bg)
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), "file: open") {
				t.Errorf("error %q does not name the backend", err)
			}
			if tc.unavailable {
				mustIs(t, err, driver.ErrUnavailable, "Open")
				if !strings.Contains(err.Error(), regular) {
					t.Errorf("error %q does not name the path", err)
				}
			} else if tc.ttl > 0 && !strings.Contains(err.Error(), tc.url) {
				t.Errorf("error %q does not name the URL", err)
			}
		})
	}
}

func TestErrorsReadWell(t *testing.T) {
	d := open(t, t.TempDir(), "m", long)
	err := d.Join(bg, "compute", nil)
	if got, want := err.Error(), `file: join "compute": group not found`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestTwoSessionsSeeEachOther(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "a", long)
	b := open(t, dir, "b", long)
	must(t, a.CreateGroup(bg, "g"), "create")
	mustIs(t, b.CreateGroup(bg, "g"), driver.ErrGroupExists, "create again")
	if gs, err := b.Groups(bg); err != nil || !slices.Equal(gs, []string{"g"}) {
		t.Fatalf("Groups = %v, %v", gs, err)
	}
	caps, err := driver.EncodeCapabilities(map[string]any{"zone": "z1", "cpus": 8})
	must(t, err, "encode")
	must(t, a.Join(bg, "g", caps), "a joins")
	must(t, b.Join(bg, "g", nil), "b joins")
	ms, err := b.Members(bg, "g")
	must(t, err, "members")
	if len(ms) != 2 || ms[0].ID != "a" || ms[1].ID != "b" {
		t.Fatalf("members = %+v", ms)
	}
	if !bytes.Equal(ms[0].Capabilities, caps) || ms[1].Capabilities != nil {
		t.Fatalf("capabilities = %q, %q", ms[0].Capabilities, ms[1].Capabilities)
	}
	newCaps, _ := driver.EncodeCapabilities(map[string]any{"zone": "z2"})
	must(t, a.SetCapabilities(bg, "g", newCaps), "set caps")
	ms, _ = b.Members(bg, "g")
	if !bytes.Equal(ms[0].Capabilities, newCaps) {
		t.Fatalf("capabilities after update = %q", ms[0].Capabilities)
	}
	must(t, a.Leave(bg, "g"), "leave")
	if ids := memberIDs(t, b, "g"); !slices.Equal(ids, []string{"b"}) {
		t.Fatalf("members after leave = %v", ids)
	}
}

func TestMembership(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "a", long)
	other := open(t, dir, "a", long) // same member id, another session
	mustIs(t, a.Join(bg, "g", nil), driver.ErrGroupNotFound, "join missing")
	mustIs(t, a.Leave(bg, "g"), driver.ErrGroupNotFound, "leave missing")
	_, err := a.Members(bg, "g")
	mustIs(t, err, driver.ErrGroupNotFound, "members missing")
	mustIs(t, a.DeleteGroup(bg, "g"), driver.ErrGroupNotFound, "delete missing")
	mustIs(t, a.SetForcedDown(bg, "g", "a", true), driver.ErrGroupNotFound, "force down missing")

	must(t, a.CreateGroup(bg, "g"), "create")
	if ids := memberIDs(t, a, "g"); len(ids) != 0 {
		t.Fatalf("empty group lists %v", ids)
	}
	mustIs(t, a.Leave(bg, "g"), driver.ErrNotMember, "leave unjoined")
	mustIs(t, a.SetCapabilities(bg, "g", nil), driver.ErrNotMember, "set caps unjoined")
	must(t, a.Join(bg, "g", []byte{0x81, 0xa1, 'k', 0x01}), "join")
	mustIs(t, a.Join(bg, "g", nil), driver.ErrMemberExists, "join twice")
	mustIs(t, other.Join(bg, "g", nil), driver.ErrMemberExists, "join from another session")
	mustIs(t, other.SetCapabilities(bg, "g", nil), driver.ErrNotMember, "set caps of another session's member")
	mustIs(t, other.Leave(bg, "g"), driver.ErrNotMember, "leave another session's member")
	ms, _ := a.Members(bg, "g")
	if len(ms) != 1 || !bytes.Equal(ms[0].Capabilities, []byte{0x81, 0xa1, 'k', 0x01}) {
		t.Fatalf("first member's record changed: %+v", ms)
	}
	must(t, a.SetCapabilities(bg, "g", []byte{}), "empty caps")
	ms, _ = a.Members(bg, "g")
	if ms[0].Capabilities != nil {
		t.Fatalf("empty capabilities read back as %q, want nil", ms[0].Capabilities)
	}

	mustIs(t, a.DeleteGroup(bg, "g"), driver.ErrGroupNotEmpty, "delete with a live member")
	must(t, a.Leave(bg, "g"), "leave")
	mustIs(t, a.Leave(bg, "g"), driver.ErrNotMember, "leave twice")
	must(t, a.DeleteGroup(bg, "g"), "delete")
	mustIs(t, a.Join(bg, "g", nil), driver.ErrGroupNotFound, "join deleted")
	if gs, _ := a.Groups(bg); len(gs) != 0 {
		t.Fatalf("groups after delete = %v", gs)
	}
}

func TestForcedDown(t *testing.T) {
	dir := t.TempDir()
	op := open(t, dir, "operator", long)
	must(t, op.CreateGroup(bg, "g"), "create")
	must(t, op.SetForcedDown(bg, "g", "n1", true), "force down before join")
	n1 := open(t, dir, "n1", long)
	must(t, n1.Join(bg, "g", nil), "join")
	ms, _ := op.Members(bg, "g")
	if len(ms) != 1 || !ms[0].ForcedDown {
		t.Fatalf("members = %+v, want n1 forced down", ms)
	}
	must(t, n1.Close(bg), "close")
	n1 = open(t, dir, "n1", long)
	must(t, n1.Join(bg, "g", nil), "join again")
	ms, _ = op.Members(bg, "g")
	if len(ms) != 1 || !ms[0].ForcedDown {
		t.Fatalf("mark did not outlive the session: %+v", ms)
	}
	must(t, op.SetForcedDown(bg, "g", "n1", false), "clear")
	must(t, op.SetForcedDown(bg, "g", "n1", false), "clear twice")
	ms, _ = op.Members(bg, "g")
	if ms[0].ForcedDown {
		t.Fatal("mark not cleared")
	}
	// DeleteGroup removes marks with the group.
	must(t, op.SetForcedDown(bg, "g", "n1", true), "force down")
	must(t, n1.Leave(bg, "g"), "leave")
	must(t, op.DeleteGroup(bg, "g"), "delete")
	must(t, op.CreateGroup(bg, "g"), "recreate")
	must(t, n1.Join(bg, "g", nil), "join recreated")
	ms, _ = op.Members(bg, "g")
	if ms[0].ForcedDown {
		t.Fatal("mark survived DeleteGroup")
	}
}

func TestExpiry(t *testing.T) {
	dir := t.TempDir()
	const ttl = 600 * time.Millisecond
	a := open(t, dir, "a", ttl)
	b := open(t, dir, "b", long)
	join(t, a, "g", nil)
	tok, err := a.TryLock(bg, "L")
	must(t, err, "lock")
	if ids := memberIDs(t, b, "g"); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("members = %v", ids)
	}
	// No heartbeat: a expires.
	eventually(t, 10*time.Second, "a vanishes", func() bool { return len(memberIDs(t, b, "g")) == 0 })
	// A listing hides a dead member at once; its record goes with the
	// sweep that follows, not necessarily in the same call.
	eventually(t, 10*time.Second, "the dead member's record is removed", func() bool {
		_, _ = b.Members(bg, "g")
		return !exists(filepath.Join(dir, "groups", "g", "a"))
	})
	_, err = b.LockHolder(bg, "L")
	mustIs(t, err, driver.ErrNotLocked, "holder of an expired session's lock")
	tok2, err := b.TryLock(bg, "L")
	must(t, err, "lock after expiry")
	if tok2 <= tok {
		t.Fatalf("token %d after expiry, not above %d", tok2, tok)
	}
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after expiry")
	}
	mustIs(t, a.Heartbeat(bg), driver.ErrSessionLost, "heartbeat after expiry")
	err = a.Unlock(bg, "L", tok)
	mustIs(t, err, driver.ErrNotLocked, "unlock after expiry")
	mustIs(t, err, driver.ErrSessionLost, "unlock after expiry")
	mustIs(t, a.Join(bg, "g", nil), driver.ErrSessionLost, "join after expiry")
	must(t, a.Close(bg), "close a lost session")
	if h, err := b.LockHolder(bg, "L"); err != nil || h.Member != "b" || h.Token != tok2 {
		t.Fatalf("holder = %+v, %v", h, err)
	}
}

func TestExpiryWithoutAnyCall(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "a", 300*time.Millisecond)
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the TTL")
	}
	if n := listDir(t, filepath.Join(dir, "sessions")); len(n) != 0 {
		t.Fatalf("sessions left: %v", n)
	}
}

func TestHeartbeatKeepsAlive(t *testing.T) {
	dir := t.TempDir()
	const ttl = time.Second
	a := open(t, dir, "a", ttl)
	b := open(t, dir, "b", long)
	join(t, a, "g", nil)
	first, _ := b.Members(bg, "g")
	for end := time.Now().Add(2 * ttl); time.Now().Before(end); time.Sleep(ttl / 10) {
		must(t, a.Heartbeat(bg), "heartbeat")
	}
	ms, _ := b.Members(bg, "g")
	if len(ms) != 1 {
		t.Fatalf("a expired although it heartbeat: %+v", ms)
	}
	if !ms[0].UpdatedAt.After(first[0].UpdatedAt) {
		t.Fatalf("UpdatedAt did not advance: %v then %v", first[0].UpdatedAt, ms[0].UpdatedAt)
	}
	select {
	case <-a.Done():
		t.Fatal("Done closed for a live session")
	default:
	}
}

func TestCloseFreesEverythingAtOnce(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "a", long)
	b := open(t, dir, "b", long)
	join(t, a, "g1", nil)
	join(t, a, "g2", nil)
	join(t, b, "g2", nil)
	t1, err := a.TryLock(bg, "L1")
	must(t, err, "lock")
	_, err = a.TryLock(bg, driver.ElectionLock("g1"))
	must(t, err, "election lock")
	must(t, a.Close(bg), "close")
	must(t, a.Close(bg), "close twice")
	select {
	case <-a.Done():
	default:
		t.Fatal("Done open after Close")
	}
	if ids := memberIDs(t, b, "g1"); len(ids) != 0 {
		t.Fatalf("g1 after close = %v", ids)
	}
	if ids := memberIDs(t, b, "g2"); !slices.Equal(ids, []string{"b"}) {
		t.Fatalf("g2 after close = %v", ids)
	}
	for _, l := range []string{"L1", driver.ElectionLock("g1")} {
		_, err := b.LockHolder(bg, l)
		mustIs(t, err, driver.ErrNotLocked, "holder after close")
	}
	t2, err := b.TryLock(bg, "L1")
	must(t, err, "lock after close")
	if t2 <= t1 {
		t.Fatalf("token %d not above %d", t2, t1)
	}
	if n := listDir(t, filepath.Join(dir, "sessions")); len(n) != 1 {
		t.Fatalf("sessions = %v, want only b's", n)
	}
	for name, err := range map[string]error{
		"heartbeat": a.Heartbeat(bg),
		"join":      a.Join(bg, "g1", nil),
		"members":   func() error { _, err := a.Members(bg, "g1"); return err }(),
		"groups":    func() error { _, err := a.Groups(bg); return err }(),
		"lock":      func() error { _, err := a.TryLock(bg, "x"); return err }(),
		"unlock":    a.Unlock(bg, "L1", t1),
	} {
		mustIs(t, err, driver.ErrClosed, name+" after close")
	}
}

func TestInstanceTakeover(t *testing.T) {
	dir := t.TempDir()
	inst := func(i string) func(*driver.Options) { return func(o *driver.Options) { o.Instance = i } }
	obs := open(t, dir, "observer", long)
	old := open(t, dir, "n1", long, inst("plugin-1"))
	bystander := open(t, dir, "n2", long, inst("plugin-2"))
	join(t, old, "g", nil)
	join(t, bystander, "g", nil)
	_, err := old.TryLock(bg, "L")
	must(t, err, "lock")

	// The plugin was killed and restarted: its new session ends the ghost
	// at once, long before the TTL.
	fresh := open(t, dir, "n1", long, inst("plugin-1"))
	if ids := memberIDs(t, obs, "g"); !slices.Equal(ids, []string{"n2"}) {
		t.Fatalf("members after takeover = %v", ids)
	}
	_, err = obs.LockHolder(bg, "L")
	mustIs(t, err, driver.ErrNotLocked, "ghost's lock")
	must(t, fresh.Join(bg, "g", nil), "rejoin as the same member")
	_, err = fresh.TryLock(bg, "L")
	must(t, err, "relock")

	mustIs(t, old.Heartbeat(bg), driver.ErrSessionLost, "ghost heartbeat")
	<-old.Done()
	must(t, old.Close(bg), "close ghost")
	if ids := memberIDs(t, obs, "g"); !slices.Equal(ids, []string{"n1", "n2"}) {
		t.Fatalf("closing the ghost touched the new session's records: %v", ids)
	}
	if h, err := obs.LockHolder(bg, "L"); err != nil || h.Member != "n1" {
		t.Fatalf("holder = %+v, %v", h, err)
	}
}

func TestNamesNeverCollideWithInternalFiles(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "lock", long)
	b := open(t, dir, "tmp", long)
	names := []string{"lock", "clock", "format", "tmp", "sessions", "groups", "marks", "locks",
		"x.lock", ".hidden", "..x", "节点-ü", "w-0123456789abcdef", "g-0123456789abcdef",
		strings.Repeat("n", driver.MaxNameLen)}
	for _, n := range names {
		must(t, a.CreateGroup(bg, n), "create "+n)
		must(t, a.Join(bg, n, []byte{0x80}), "join "+n)
		must(t, b.Join(bg, n, nil), "join "+n)
		must(t, a.SetForcedDown(bg, n, n, true), "force down "+n)
		_, err := a.TryLock(bg, n)
		must(t, err, "lock "+n)
		_, err = a.TryLock(bg, driver.ElectionLock(n))
		must(t, err, "election lock "+n)
	}
	gs, err := b.Groups(bg)
	must(t, err, "groups")
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(gs, want) {
		t.Fatalf("Groups = %q\nwant   %q", gs, want)
	}
	for _, n := range names {
		if ids := memberIDs(t, b, n); !slices.Equal(ids, []string{"lock", "tmp"}) {
			t.Fatalf("members of %q = %q", n, ids)
		}
		if h, err := b.LockHolder(bg, driver.ElectionLock(n)); err != nil || h.Member != "lock" {
			t.Fatalf("holder of election lock of %q = %+v, %v", n, h, err)
		}
	}
	// A new session's sweep leaves all of it alone.
	c := open(t, dir, "c", long)
	if gs, _ := c.Groups(bg); len(gs) != len(names) {
		t.Fatalf("groups after another Open = %q", gs)
	}
	must(t, a.Close(bg), "close")
	for _, n := range names {
		if ids := memberIDs(t, c, n); !slices.Equal(ids, []string{"tmp"}) {
			t.Fatalf("members of %q after close = %q", n, ids)
		}
	}
}

func TestInvalidNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	d := open(t, dir, "m", long)
	bad := []string{"", ".", "..", "a/b", "../../etc", "a\x00b", "a\\b", "a\nb", "\xff",
		strings.Repeat("x", driver.MaxNameLen+1)}
	for _, n := range bad {
		mustIs(t, d.CreateGroup(bg, n), driver.ErrInvalidName, "create "+n)
		mustIs(t, d.Join(bg, n, nil), driver.ErrInvalidName, "join "+n)
		_, err := d.Members(bg, n)
		mustIs(t, err, driver.ErrInvalidName, "members "+n)
		mustIs(t, d.DeleteGroup(bg, n), driver.ErrInvalidName, "delete "+n)
		_, err = d.TryLock(bg, n)
		mustIs(t, err, driver.ErrInvalidName, "lock "+n)
	}
	_, err := d.TryLock(bg, driver.ReservedPrefix+strings.Repeat("x", 250))
	mustIs(t, err, driver.ErrInvalidName, "a lock name too long for a file name")
	must(t, d.CreateGroup(bg, "g"), "create")
	mustIs(t, d.SetForcedDown(bg, "g", "../x", true), driver.ErrInvalidName, "force down ../x")
	if n := listDir(t, filepath.Dir(dir)); !slices.Equal(n, []string{"d"}) {
		t.Fatalf("something was written beside the directory: %v", n)
	}
	_, err = file.Open(bg, driver.Options{URL: dirURL(dir), Member: "a/b", TTL: time.Second})
	mustIs(t, err, driver.ErrInvalidName, "open as member a/b")
}

func TestContextHonoured(t *testing.T) {
	d := open(t, t.TempDir(), "m", long)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	err := d.CreateGroup(ctx, "g")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// TestLargeRecord: a member record much larger than one read's first
// buffer (readAll starts with 512 bytes) reads back whole, through Members
// and Member.
func TestLargeRecord(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 70_000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	caps, err := driver.EncodeCapabilities(map[string]any{"blob": big})
	if err != nil {
		t.Fatal(err)
	}
	d := open(t, dir, "m", long)
	join(t, d, "g", caps)
	ms, err := d.Members(bg, "g")
	if err != nil || len(ms) != 1 || !bytes.Equal(ms[0].Capabilities, caps) {
		t.Fatalf("Members: %d members, %v; capabilities read back whole: %v", len(ms), err, len(ms) == 1 && bytes.Equal(ms[0].Capabilities, caps))
	}
	m, err := d.(driver.MemberGetter).Member(bg, "g", "m")
	if err != nil || !bytes.Equal(m.Capabilities, caps) {
		t.Fatalf("Member: %v; capabilities read back whole: %v", err, bytes.Equal(m.Capabilities, caps))
	}
}
