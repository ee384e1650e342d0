package file_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/servicegroup/driver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dirURL is the file:// URL of an absolute directory.
func dirURL(dir string) string {
	return (&url.URL{Scheme: "file", Path: dir}).String()
}

// open opens a session in dir and closes it when the test ends.
func open(t testing.TB, dir, member string, ttl time.Duration, edit ...func(*driver.Options)) driver.Driver {
	t.Helper()
	opts := driver.Options{URL: dirURL(dir), Member: member, TTL: ttl}
	for _, e := range edit {
		e(&opts)
	}
	d, err := file.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open(%s, %s): %v", dir, member, err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

// long is a TTL no test waits for.
const long = time.Minute

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func memberIDs(t testing.TB, d driver.Driver, group string) []string {
	t.Helper()
	ms, err := d.Members(context.Background(), group)
	if err != nil {
		t.Fatalf("Members(%q): %v", group, err)
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

func mustIs(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want %v", what, err, target)
	}
}

func must(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func listDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

var bg = context.Background()

func join(t testing.TB, d driver.Driver, group string, caps []byte) {
	t.Helper()
	err := d.CreateGroup(bg, group)
	if err != nil && !errors.Is(err, driver.ErrGroupExists) {
		t.Fatal(err)
	}
	must(t, d.Join(bg, group, caps), "join "+group)
}
