package file_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/musterhq/muster/servicegroup/driver"
)

func TestGarbageIsTolerated(t *testing.T) {
	dir := t.TempDir()
	core, logs := observer.New(zapcore.InfoLevel)
	a := open(t, dir, "a", long, func(o *driver.Options) { o.Logger = zap.New(core) })
	join(t, a, "g", nil)
	_, err := a.TryLock(bg, "L")
	must(t, err, "lock")
	// What killed writers leave behind, and files muster did not write
	// (writes are renames, so an unparseable record is never muster's).
	write := func(rel, content string) {
		t.Helper()
		must(t, os.WriteFile(filepath.Join(dir, rel), []byte(content), 0o600), rel)
	}
	write("tmp/w-0123456789abcdef", "muster member 1\nsess")
	write("groups/g/half", "muster member 1\nsession 0123")
	write("groups/g/empty", "")
	write("locks/M", "\x00\x01")
	past := time.Now().Add(-time.Hour)
	must(t, os.Chtimes(filepath.Join(dir, "swept"), past, past), "age the sweep marker")

	b := open(t, dir, "b", long, func(o *driver.Options) { o.Logger = zap.New(core) })
	if n := listDir(t, filepath.Join(dir, "tmp")); len(n) != 0 {
		t.Errorf("tmp/ after Open = %v", n)
	}
	if logs.FilterMessageSnippet("leftover temporary").Len() == 0 {
		t.Error("the removed temporary file was not logged")
	}
	if ids := memberIDs(t, b, "g"); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("members = %v", ids)
	}
	if n := listDir(t, filepath.Join(dir, "groups", "g")); !slices.Equal(n, []string{"a", "empty", "half"}) {
		t.Errorf("files muster did not write were touched: %v", n)
	}
	mustIs(t, open(t, dir, "half", long).Join(bg, "g", nil), driver.ErrMemberExists, "join never replaces a foreign file")
	_, err = b.TryLock(bg, "M")
	if err == nil || !strings.Contains(err.Error(), "not a muster lock record") {
		t.Fatalf("lock over a foreign file: %v", err)
	}
}

// TestDeadRecordsGiveWay writes, by hand, the records a killed process
// leaves: a session file that is no longer renewed is gone or stale, and
// its records must give way.
func TestDeadRecordsGiveWay(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "ghost", long)
	must(t, a.CreateGroup(bg, "g"), "create")
	must(t, a.CreateGroup(bg, "h"), "create")
	const dead = "0123456789abcdef0123456789abcdef"
	record := "muster member 1\nsession " + dead + "\nttl 1000000000\n\n"
	must(t, os.WriteFile(filepath.Join(dir, "groups", "g", "ghost"), []byte(record), 0o600), "write")
	must(t, os.WriteFile(filepath.Join(dir, "groups", "h", "ghost"), []byte(record), 0o600), "write")
	lock := "muster lock 1\ntoken 41\nsession " + dead + "\nmember \"ghost\"\nttl 1000000000\n\n"
	must(t, os.WriteFile(filepath.Join(dir, "locks", "L"), []byte(lock), 0o600), "write")

	_, err := a.LockHolder(bg, "L")
	mustIs(t, err, driver.ErrNotLocked, "holder")
	must(t, a.Join(bg, "g", nil), "join over a dead record")
	if exists(filepath.Join(dir, "groups", "h", "ghost")) {
		t.Error("the dead session's other records were left behind")
	}
	tok, err := a.TryLock(bg, "L")
	must(t, err, "lock")
	if tok != 42 {
		t.Errorf("token %d, want 42", tok)
	}
	must(t, os.WriteFile(filepath.Join(dir, "groups", "h", "ghost"), []byte(record), 0o600), "write")
	must(t, a.DeleteGroup(bg, "h"), "delete a group whose only member is dead")
	if gs, _ := a.Groups(bg); !slices.Equal(gs, []string{"g"}) {
		t.Fatalf("groups = %v", gs)
	}
}

// TestCloseWithoutTheFlock: a process frozen inside a critical section
// holds the flock. A Close that cannot wait for it still ends the session
// at once (what it leaves reads as dead), and readers do not wait for it.
func TestCloseWithoutTheFlock(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "a", long)
	b := open(t, dir, "b", long)
	join(t, a, "g", nil)
	_, err := a.TryLock(bg, "L")
	must(t, err, "lock")

	frozen, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
	must(t, err, "open the lock file")
	defer frozen.Close()
	must(t, syscall.Flock(int(frozen.Fd()), syscall.LOCK_EX), "flock")
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	if err := a.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close while the flock is held: %v", err)
	}
	<-a.Done()
	mustIs(t, a.Join(bg, "g", nil), driver.ErrClosed, "join after close")
	if ids := memberIDs(t, b, "g"); len(ids) != 0 {
		t.Fatalf("members = %v", ids)
	}
	_, err = b.LockHolder(bg, "L")
	mustIs(t, err, driver.ErrNotLocked, "holder")
	ctx, cancel = context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	_, err = b.TryLock(ctx, "L")
	mustIs(t, err, context.DeadlineExceeded, "lock while the flock is held")

	must(t, syscall.Flock(int(frozen.Fd()), syscall.LOCK_UN), "unflock")
	_, err = b.TryLock(bg, "L")
	must(t, err, "lock after the thaw")
	if n := listDir(t, filepath.Join(dir, "groups", "g")); len(n) != 0 {
		t.Fatalf("dead records left after the thaw: %v", n)
	}
}
