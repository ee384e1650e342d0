package host_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestOptionalInterfaces: a plugin whose driver implements Watcher and
// LockWaiter gives a host Driver that does too, and they work end to end.
func TestOptionalInterfaces(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	local := openInProcess(t, opts(dir, "local", time.Minute))
	if err := local.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	d, err := host.Config{Dir: pluginDir, Logger: testLogger(t)}.Factory("watching")(ctx, opts(dir, "plugged", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	w, ok := d.(driver.Watcher)
	if !ok {
		t.Fatal("not a Watcher")
	}
	lw, ok := d.(driver.LockWaiter)
	if !ok {
		t.Fatal("not a LockWaiter")
	}

	if _, _, err := w.Watch(ctx, "missing"); !errors.Is(err, driver.ErrGroupNotFound) {
		t.Fatalf("watch missing: %v", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	events, errc, err := w.Watch(wctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if err := local.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if ev != (driver.Event{Type: driver.Joined, Group: "g", Member: "local"}) {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	cancel()
	for range events {
	}
	if err := <-errc; err != nil {
		t.Fatalf("errc after cancel: %v", err)
	}

	tok, err := local.TryLock(ctx, "l")
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if _, err := lw.Lock(short, "l"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lock of a held lock: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := lw.Lock(ctx, "l")
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := local.Unlock(ctx, "l", tok); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock did not return once the lock was free")
	}
	if h, err := local.LockHolder(ctx, "l"); err != nil || h.Member != "plugged" {
		t.Fatalf("holder %+v, %v", h, err)
	}
}
