package file_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestRefusesForeignDirectories: a directory muster did not create (not
// empty, no format marker), a system root and an empty path are refused
// with one clear error, and nothing is touched.
func TestRefusesForeignDirectories(t *testing.T) {
	foreign := t.TempDir()
	must(t, os.WriteFile(filepath.Join(foreign, "precious.txt"), []byte("keep"), 0o600), "write")
	must(t, os.Mkdir(filepath.Join(foreign, "tmp"), 0o700), "mkdir")
	must(t, os.WriteFile(filepath.Join(foreign, "tmp", "precious.txt"), []byte("keep"), 0o600), "write")
	// System roots are checked without Open: a regression must never get
	// the chance to write into them.
	for _, u := range []string{"file:///", "file://localhost/", "file:///tmp", "file:///var/lib/",
		"file:///etc", "file:///usr/", "file:///home", "file:///var/tmp", "file:///proc"} {
		if _, err := file.ParseURL(u); err == nil || !strings.Contains(err.Error(), "system directory") {
			t.Errorf("ParseURL(%s) = %v, want a refused system directory", u, err)
		}
	}
	for _, tc := range []struct{ name, url, want string }{
		{"not empty, no marker", dirURL(foreign), foreign},
		{"empty path", "file://", "no directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := file.Open(bg, driver.Options{URL: tc.url, Member: "m", TTL: time.Second})
			if err == nil {
				_ = d.Close(bg)
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), "file: open") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name the backend and %q", err, tc.want)
			}
		})
	}
	if n := listDir(t, foreign); !slices.Equal(n, []string{"precious.txt", "tmp"}) {
		t.Fatalf("the refused directory was touched: %v", n)
	}
	if n := listDir(t, filepath.Join(foreign, "tmp")); !slices.Equal(n, []string{"precious.txt"}) {
		t.Fatalf("the refused directory was touched: tmp/ = %v", n)
	}
	// A missing directory, and an empty one, are adopted and marked.
	for _, dir := range []string{filepath.Join(t.TempDir(), "new", "dir"), t.TempDir()} {
		d := open(t, dir, "m", long)
		must(t, d.Close(bg), "close")
		b, err := os.ReadFile(filepath.Join(dir, "format"))
		if err != nil || string(b) != "muster-file 3\n" {
			t.Fatalf("marker = %q, %v", b, err)
		}
		open(t, dir, "again", long) // its own directory: adopted again
	}
}

// TestForeignFilesSurvive puts a file muster did not write into every
// folder of its directory and runs every operation, a sweep, expiries and
// Close: every foreign file is still there, unchanged.
func TestForeignFilesSurvive(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "a", long)
	join(t, a, "g", nil)
	join(t, a, "h", nil)
	must(t, a.SetForcedDown(bg, "g", "x", true), "force down")
	must(t, a.SetForcedDown(bg, "h", "x", true), "force down")
	_, err := a.TryLock(bg, "L")
	must(t, err, "lock")
	var planted []string
	for _, sub := range []string{".", "sessions", "instances", "groups", "groups/g", "groups/h",
		"marks", "marks/g", "marks/h", "locks", "tmp"} {
		for _, name := range []string{"precious.txt", "0123456789abcdef0123456789abcdef", "w-nothex"} {
			p := filepath.Join(dir, sub, name)
			must(t, os.WriteFile(p, []byte("not muster's"), 0o600), "plant")
			planted = append(planted, p)
		}
	}
	check := func(when string) {
		t.Helper()
		for _, p := range planted {
			if b, err := os.ReadFile(p); err != nil || string(b) != "not muster's" {
				t.Fatalf("%s: %s is gone or changed: %q, %v", when, p, b, err)
			}
		}
	}
	past := time.Now().Add(-time.Hour)
	must(t, os.Chtimes(filepath.Join(dir, "swept"), past, past), "age the sweep marker")
	short := open(t, dir, "short", 300*time.Millisecond, func(o *driver.Options) { o.Instance = "i" })
	join(t, short, "g", nil)
	_, err = short.TryLock(bg, "S")
	must(t, err, "lock")
	check("after Open with a sweep")

	b := open(t, dir, "b", long)
	if ids := memberIDs(t, b, "g"); !slices.Contains(ids, "a") || slices.Contains(ids, "precious.txt") {
		t.Fatalf("members = %v", ids)
	}
	must(t, b.Join(bg, "g", nil), "join")
	must(t, b.SetCapabilities(bg, "g", []byte{0x80}), "caps")
	must(t, b.Leave(bg, "g"), "leave")
	tok, err := b.TryLock(bg, "M")
	must(t, err, "lock")
	must(t, b.Unlock(bg, "M", tok), "unlock")
	must(t, b.BreakLock(bg, "L"), "break")
	_, err = b.Groups(bg)
	must(t, err, "groups")
	must(t, a.Leave(bg, "h"), "leave h")
	err = b.DeleteGroup(bg, "h")
	mustIs(t, err, driver.ErrGroupNotEmpty, "delete a group holding a foreign file")
	if !strings.Contains(err.Error(), "precious.txt") {
		t.Errorf("the error %q does not name the foreign file", err)
	}
	check("after the operations")

	<-short.Done() // expired: its records are reaped
	eventually(t, 10*time.Second, "the expired member vanishes", func() bool {
		return !slices.Contains(memberIDs(t, b, "g"), "short")
	})
	again := open(t, dir, "short2", long, func(o *driver.Options) { o.Instance = "i" })
	must(t, os.Chtimes(filepath.Join(dir, "swept"), past, past), "age the sweep marker")
	open(t, dir, "c", long)
	check("after expiry, takeover and another sweep")

	for _, d := range []driver.Driver{a, b, short, again} {
		must(t, d.Close(bg), "close")
	}
	check("after Close")
}

// TestConcurrentAdoption: processes opening one new directory at once all
// adopt it; none takes another's fresh records for foreign files.
func TestConcurrentAdoption(t *testing.T) {
	for round := range 20 {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("new-%d", round))
		errs := make(chan error, 4)
		for i := range 4 {
			go func() {
				d, err := file.Open(bg, driver.Options{URL: dirURL(dir), Member: fmt.Sprintf("m%d", i), TTL: time.Minute})
				if err == nil {
					err = d.Close(bg)
				}
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}
