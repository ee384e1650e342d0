package redis_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/testserver"
	"github.com/musterhq/muster/plugins/redis"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestToozInterop runs testdata/tooz_interop.py (Debian's tooz 3.1) against
// the package's server: tooz sees muster's member with its capabilities,
// muster sees tooz's member, and a lock held by muster excludes tooz.
func TestToozInterop(t *testing.T) {
	srv := server(t)
	if _, err := os.Stat("/usr/lib/python3/dist-packages/tooz"); err != nil {
		testserver.Missing(t, testserver.ErrMissing)
	}
	ctx := context.Background()
	url := nsURL(t)
	ns := namespace(url)
	d, err := redis.Open(ctx, driver.Options{URL: url, Member: "go-1", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	if err := d.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	caps, _ := driver.EncodeCapabilities(map[string]any{"zone": "a"})
	if err := d.Join(ctx, "g", caps); err != nil {
		t.Fatal(err)
	}
	if _, err := d.TryLock(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", "testdata/tooz_interop.py",
		"redis://"+srv.Addr()+"?namespace="+ns, "g")
	stdin, _ := cmd.StdinPipe()
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	// The script joins as py-1 and says "joined"; then muster must list it.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "joined") {
		if time.Now().After(deadline) || strings.Contains(out.String(), "FAIL") || strings.Contains(out.String(), "Traceback") {
			t.Fatalf("tooz script: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ms, err := d.Members(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	if !strings.Contains(strings.Join(ids, ","), "py-1") || !strings.Contains(strings.Join(ids, ","), "go-1") {
		t.Errorf("muster lists %v; want go-1 and py-1", ids)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tooz script: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "OK") {
		t.Fatalf("tooz script: %s", out.String())
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
