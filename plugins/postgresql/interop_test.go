package postgresql_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestToozInterop runs testdata/tooz_interop.py (Debian's tooz 3.1 and
// python3-psycopg2) against the package's server: a lock tooz holds is
// refused by muster (and LockHolder says it is held, by nobody muster
// knows), and free again once tooz releases it.
func TestToozInterop(t *testing.T) {
	s := server(t)
	if _, err := os.Stat("/usr/lib/python3/dist-packages/tooz"); err != nil {
		testserver.Missing(t, testserver.ErrMissing)
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import psycopg2").Run(); err != nil {
		testserver.Missing(t, errors.Join(testserver.ErrMissing, errors.New("python3-psycopg2")))
	}
	ctx := context.Background()
	d, err := open(ctx, nsURL(t), "go-1")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	if _, err := d.TryLock(ctx, "muster-held"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", "testdata/tooz_interop.py",
		"postgresql://postgres@"+s.Addr()+"/"+testDB)
	stdin, _ := cmd.StdinPipe()
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "muster-held") {
		if time.Now().After(deadline) || strings.Contains(out.String(), "FAIL") || strings.Contains(out.String(), "Traceback") {
			t.Fatalf("tooz script: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := d.TryLock(ctx, "tooz-held"); !errors.Is(err, driver.ErrLockHeld) {
		t.Fatalf("TryLock of a lock tooz holds: %v; want ErrLockHeld", err)
	}
	if h, err := d.LockHolder(ctx, "tooz-held"); err != nil || h != (driver.LockHolder{}) {
		t.Errorf("LockHolder of a lock tooz holds: %+v, %v; want an empty holder", h, err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tooz script: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "OK") {
		t.Fatalf("tooz script: %s", out.String())
	}
	if _, err := d.TryLock(ctx, "tooz-held"); err != nil {
		t.Errorf("TryLock after tooz released: %v", err)
	}
	t.Logf("tooz script:\n%s", out.String())
}

// syncBuffer is an output buffer a test may read while a process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
