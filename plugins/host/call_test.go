package host_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
)

// The hot calls share a few long-lived streams: concurrent callers must
// each get their own answer, and a call its context interrupts must not
// poison the stream for the next caller.
func TestCallStreams(t *testing.T) {
	ctx := context.Background()
	d := openPlugin(t, host.Config{Dir: pluginDir}, opts(t.TempDir(), "m", 10*time.Second))
	for i := range 8 {
		if err := d.CreateGroup(ctx, fmt.Sprintf("g%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			group, lock := fmt.Sprintf("g%d", i), fmt.Sprintf("l%d", i)
			for range 50 {
				if _, err := d.Members(ctx, group); err != nil {
					errs <- err
					return
				}
				tok, err := d.TryLock(ctx, lock)
				if err != nil {
					errs <- err
					return
				}
				h, err := d.LockHolder(ctx, lock)
				if err != nil || h.Token != tok || h.Member != "m" {
					errs <- fmt.Errorf("holder of %s: %+v, %v; want token %d", lock, h, err, tok)
					return
				}
				if err := d.Unlock(ctx, lock, tok); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// An expired context fails the call with the context's error...
	dead, cancel := context.WithTimeout(ctx, -time.Second)
	defer cancel()
	if _, err := d.Members(dead, "g0"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Members with an expired context: %v; want DeadlineExceeded", err)
	}
	// ...so does one cancelled while its call is in flight...
	for range 20 {
		c, cancel := context.WithCancel(ctx)
		go cancel()
		if _, err := d.Members(c, "g0"); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Members racing a cancel: %v; want nil or Canceled", err)
		}
	}
	// ...and the session and its streams work on.
	if err := d.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat after interrupted calls: %v", err)
	}
	if _, err := d.Members(ctx, "g0"); err != nil {
		t.Fatalf("members after interrupted calls: %v", err)
	}
	if _, err := d.Members(ctx, "missing"); !errors.Is(err, driver.ErrGroupNotFound) {
		t.Fatalf("members of a missing group: %v; want ErrGroupNotFound", err)
	}
}
