package mysql_test

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

// TestToozInterop runs testdata/tooz_interop.py (Debian's tooz 3.1, with
// PyMySQL) against the package's server: while tooz holds its GET_LOCK
// lock, muster refuses the same name; after tooz releases it, muster
// takes it.
func TestToozInterop(t *testing.T) {
	if _, err := os.Stat("/usr/lib/python3/dist-packages/tooz/drivers/mysql.py"); err != nil {
		testserver.Missing(t, testserver.ErrMissing)
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import pymysql").Run(); err != nil {
		testserver.Missing(t, testserver.ErrMissing)
	}
	url := dbURL(t)
	ctx := context.Background()
	d := open(t, url, "go-1", time.Minute)
	name := "shared-" + url[strings.LastIndexByte(url, '/')+1:] // GET_LOCK names are server-wide
	cmd := exec.Command("/usr/bin/python3", "testdata/tooz_interop.py", url, name)
	stdin, _ := cmd.StdinPipe()
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "locked") {
		if time.Now().After(deadline) || strings.Contains(out.String(), "FAIL") || strings.Contains(out.String(), "Traceback") {
			t.Fatalf("tooz script: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := d.TryLock(ctx, name); !errors.Is(err, driver.ErrLockHeld) {
		t.Fatalf("TryLock of a lock tooz holds: %v; want ErrLockHeld", err)
	} else {
		t.Log(err)
	}
	if h, err := d.LockHolder(ctx, name); err != nil || h.Session != "" {
		t.Errorf("LockHolder of tooz's lock = %+v, %v; want an anonymous holder", h, err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tooz script: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "OK") {
		t.Fatalf("tooz script: %s", out.String())
	}
	tok, err := d.TryLock(ctx, name)
	if err != nil {
		t.Fatalf("TryLock after tooz released: %v", err)
	}
	if err := d.Unlock(ctx, name, tok); err != nil {
		t.Fatal(err)
	}
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
