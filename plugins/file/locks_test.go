package file_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/servicegroup/driver"
)

func TestLockBasics(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "a", long)
	b := open(t, dir, "b", long)
	_, err := a.LockHolder(bg, "L")
	mustIs(t, err, driver.ErrNotLocked, "holder of a new lock")
	mustIs(t, a.BreakLock(bg, "L"), driver.ErrNotLocked, "break a free lock")
	mustIs(t, a.Unlock(bg, "L", 1), driver.ErrNotLocked, "unlock a free lock")

	t1, err := a.TryLock(bg, "L")
	must(t, err, "lock")
	_, err = a.TryLock(bg, "L")
	mustIs(t, err, driver.ErrLockHeld, "lock again in the same session")
	_, err = b.TryLock(bg, "L")
	mustIs(t, err, driver.ErrLockHeld, "lock from another session")
	if h, err := b.LockHolder(bg, "L"); err != nil || h != (driver.LockHolder{Member: "a", Token: t1, Session: a.(driver.SessionID).SessionID()}) {
		t.Fatalf("holder = %+v, %v", h, err)
	}
	mustIs(t, a.Unlock(bg, "L", t1+1), driver.ErrNotLocked, "unlock with a wrong token")
	mustIs(t, b.Unlock(bg, "L", t1), driver.ErrNotLocked, "unlock by another session")
	if _, err := b.LockHolder(bg, "L"); err != nil {
		t.Fatal("a failed unlock freed the lock")
	}
	// Holding L while another takes M leaves L held.
	_, err = b.TryLock(bg, "M")
	must(t, err, "lock M")
	if h, _ := b.LockHolder(bg, "L"); h.Member != "a" {
		t.Fatal("taking M freed L")
	}
	must(t, a.Unlock(bg, "L", t1), "unlock")
	mustIs(t, a.Unlock(bg, "L", t1), driver.ErrNotLocked, "unlock twice")
	_, err = a.LockHolder(bg, "L")
	mustIs(t, err, driver.ErrNotLocked, "holder after unlock")
}

func TestTokensStrictlyIncrease(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "a", long)
	b := open(t, dir, "b", long)
	var last driver.Token
	next := func(d driver.Driver, how string) driver.Token {
		t.Helper()
		tok, err := d.TryLock(bg, "L")
		must(t, err, how)
		if tok <= last {
			t.Fatalf("%s: token %d not above %d", how, tok, last)
		}
		last = tok
		return tok
	}
	tok := next(a, "first holder")
	must(t, a.Unlock(bg, "L", tok), "unlock")
	tok = next(b, "after unlock")
	must(t, a.BreakLock(bg, "L"), "break")
	mustIs(t, b.Unlock(bg, "L", tok), driver.ErrNotLocked, "unlock a broken lock")
	mustIs(t, a.BreakLock(bg, "L"), driver.ErrNotLocked, "break twice")
	next(a, "after break")

	// A holder that expires: its successor's token is larger still.
	must(t, a.BreakLock(bg, "L"), "break")
	short := open(t, dir, "short", 500*time.Millisecond)
	stale := next(short, "short-lived holder")
	eventually(t, 10*time.Second, "the short session's lock is free", func() bool {
		_, err := b.LockHolder(bg, "L")
		return errors.Is(err, driver.ErrNotLocked)
	})
	next(b, "after expiry")
	mustIs(t, short.Unlock(bg, "L", stale), driver.ErrNotLocked, "unlock by an expired holder")

	// New sessions and a closed holder never reset the count.
	must(t, b.Close(bg), "close")
	c := open(t, dir, "c", long)
	next(c, "after the holder closed")
}

// TestMutualExclusion increments a counter kept in a file, under the lock,
// from several sessions and goroutines: a lost update shows as a short
// count.
func TestMutualExclusion(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(t.TempDir(), "counter")
	must(t, os.WriteFile(counter, []byte("0"), 0o600), "counter")
	const sessions, goroutines, rounds = 3, 3, 25
	var wg sync.WaitGroup
	errc := make(chan error, sessions*goroutines)
	for i := range sessions {
		d := open(t, dir, fmt.Sprintf("s%d", i), long)
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errc <- increment(d, counter, rounds)
			}()
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		must(t, err, "increment")
	}
	b, _ := os.ReadFile(counter)
	if got, want := string(b), strconv.Itoa(sessions*goroutines*rounds); got != want {
		t.Fatalf("counter = %s, want %s", got, want)
	}
}

func increment(d driver.Driver, counter string, rounds int) error {
	for range rounds {
		var tok driver.Token
		for {
			var err error
			tok, err = d.TryLock(bg, "counter")
			if err == nil {
				break
			}
			if !errors.Is(err, driver.ErrLockHeld) {
				return err
			}
			time.Sleep(time.Millisecond)
		}
		b, err := os.ReadFile(counter)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(b))
		if err != nil {
			return err
		}
		runtimeYield()
		if err := os.WriteFile(counter, []byte(strconv.Itoa(n+1)), 0o600); err != nil {
			return err
		}
		if err := d.Unlock(bg, "counter", tok); err != nil {
			return err
		}
	}
	return nil
}

// runtimeYield widens the window a broken lock would let two holders in.
func runtimeYield() { time.Sleep(50 * time.Microsecond) }

// TestMemberLookup: one member's entry, read without listing the group,
// is what Members lists for it.
func TestMemberLookup(t *testing.T) {
	type memberGetter interface {
		Member(ctx context.Context, group, member string) (driver.Member, error)
	}
	dir := t.TempDir()
	a := open(t, dir, "a", long)
	obs := open(t, dir, "obs", long)
	mg, ok := obs.(memberGetter)
	if !ok {
		t.Fatal("file has no Member lookup")
	}
	must(t, a.CreateGroup(bg, "g"), "create")
	_, err := mg.Member(bg, "g", "a")
	mustIs(t, err, driver.ErrNotMember, "before join")
	_, err = mg.Member(bg, "nope", "a")
	mustIs(t, err, driver.ErrGroupNotFound, "missing group")
	must(t, a.Join(bg, "g", []byte{0x80}), "join")
	must(t, obs.SetForcedDown(bg, "g", "a", true), "force down")
	ms, err := obs.Members(bg, "g")
	must(t, err, "members")
	m, err := mg.Member(bg, "g", "a")
	if err != nil || m.ID != "a" || !m.ForcedDown || !m.UpdatedAt.Equal(ms[0].UpdatedAt) || len(m.Capabilities) != 1 {
		t.Fatalf("Member = %+v, %v; Members = %+v", m, err, ms)
	}
	must(t, a.Close(bg), "close")
	_, err = mg.Member(bg, "g", "a")
	mustIs(t, err, driver.ErrNotMember, "after close")
}

// TestTokensSurvivePowerCut: taking a lock rewrites its record in place
// without fsync; only the token ceiling is fsynced, once per many
// acquires. A power cut can bring back the record as it was on disk (or
// torn), with a new boot id: the next token must still be above every
// token issued before it.
func TestTokensSurvivePowerCut(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "locks", "L")
	a := open(t, dir, "a", long)
	var last driver.Token
	cycle := func(d driver.Driver, n int, how string) {
		t.Helper()
		for range n {
			tok, err := d.TryLock(bg, "L")
			must(t, err, how)
			if tok <= last {
				t.Fatalf("%s: token %d not above %d", how, tok, last)
			}
			last = tok
			must(t, d.Unlock(bg, "L", tok), how)
		}
	}
	cycle(a, 1, "first lock")
	onDisk, err := os.ReadFile(p) // created whole and fsynced
	must(t, err, "read the lock file")
	cycle(a, 10, "in-place rewrites")

	// The page cache is lost: the file is what was fsynced, and the host
	// has a new boot id (which also ends every session of the old one).
	powerCut := func(content []byte, boot string) driver.Driver {
		t.Helper()
		must(t, os.WriteFile(p, content, 0o660), "restore what was on disk")
		t.Cleanup(file.SetBootID(boot))
		return open(t, dir, "after-"+boot, long)
	}
	b := powerCut(onDisk, "boot-2")
	cycle(b, 1, "after a power cut that lost the in-place rewrites")

	// Slot 0 torn by the power cut: the lock is free and counts on from
	// the ceiling.
	torn, err := os.ReadFile(p)
	must(t, err, "read")
	copy(torn[20:], "xxxx")
	c := powerCut(torn, "boot-3")
	if _, err := c.LockHolder(bg, "L"); !errors.Is(err, driver.ErrNotLocked) {
		t.Fatalf("holder of a torn record: %v; want ErrNotLocked", err)
	}
	cycle(c, 1, "after a power cut that tore the current record")

	// A power cut during a ceiling raise tears the ceiling slot being
	// written; the token that needed the raise was not returned yet.
	var before, after []byte
	for range 3000 {
		before, err = os.ReadFile(p)
		must(t, err, "read")
		cycle(c, 1, "towards a ceiling raise")
		after, err = os.ReadFile(p)
		must(t, err, "read")
		if !bytes.Equal(before[file.LockSlot:], after[file.LockSlot:]) {
			break
		}
	}
	if bytes.Equal(before[file.LockSlot:], after[file.LockSlot:]) {
		t.Fatal("3000 acquires never raised the ceiling")
	}
	issued := last
	for slot := 1; slot <= 2; slot++ {
		at := slot * file.LockSlot
		if bytes.Equal(before[at:at+file.LockSlot], after[at:at+file.LockSlot]) {
			continue // not the slot the raise wrote
		}
		tornRaise := bytes.Clone(before)
		copy(tornRaise[at:], after[at:at+file.LockSlot/2]) // half of it landed
		last = issued - 1                                  // the raising acquire never returned
		d := powerCut(tornRaise, fmt.Sprintf("boot-4.%d", slot))
		cycle(d, 1, fmt.Sprintf("after a power cut that tore ceiling slot %d", slot))
	}
	raised := after

	// Both ceilings unreadable: not a file muster wrote, left alone.
	bad := bytes.Clone(raised)
	copy(bad[file.LockSlot+20:], "xxxx")
	copy(bad[2*file.LockSlot+20:], "xxxx")
	e := powerCut(bad, "boot-5")
	if _, err := e.TryLock(bg, "L"); err == nil || !strings.Contains(err.Error(), "not a muster lock record") {
		t.Fatalf("lock over a file with no readable ceiling: %v", err)
	}
}

// TestLockHolderDuringRewrites: readers take no flock, so they may read
// a record while it is rewritten in place; they must never report garbage.
func TestLockHolderDuringRewrites(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "a", long)
	r := open(t, dir, "reader", long)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for range 2000 {
			tok, err := a.TryLock(bg, "L")
			if err != nil {
				t.Errorf("lock: %v", err)
				return
			}
			if err := a.Unlock(bg, "L", tok); err != nil {
				t.Errorf("unlock: %v", err)
				return
			}
		}
	}()
	reads, held := 0, 0
	for running := true; running; reads++ {
		select {
		case <-done:
			running = false
		default:
		}
		h, err := r.LockHolder(bg, "L")
		switch {
		case errors.Is(err, driver.ErrNotLocked):
		case err != nil:
			t.Fatalf("holder during rewrites: %v", err)
		case h.Member != "a" || h.Token == 0:
			t.Fatalf("holder during rewrites: %+v", h)
		default:
			held++
		}
	}
	wg.Wait()
	t.Logf("%d reads, %d saw the lock held", reads, held)
}

// TestLockFileNotMuster: a directory where a lock's file belongs is not a
// lock muster wrote (opening it fails with EISDIR). TryLock refuses it
// with an error naming the lock,
// and a lock whose file does not exist yet is taken and released.
func TestLockFileNotMuster(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir, "m", long)
	if err := os.MkdirAll(filepath.Join(dir, "locks", "odd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if tok, err := d.TryLock(bg, "odd"); err == nil || !strings.Contains(err.Error(), `lock "odd"`) ||
		!strings.Contains(err.Error(), "not a muster lock record") {
		t.Fatalf("TryLock on a directory: token %d, error %v; want the lock named, not a muster lock record", tok, err)
	}
	tok, err := d.TryLock(bg, "new")
	if err != nil {
		t.Fatalf("TryLock of a new name: %v", err)
	}
	if err := d.Unlock(bg, "new", tok); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "locks", "new")); err != nil {
		t.Fatalf("the lock's record: %v", err)
	}
}
