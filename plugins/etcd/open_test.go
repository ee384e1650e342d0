package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/etcd"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestOpenErrors: bad URLs and unreachable servers fail Open with one
// clear error naming the backend and the address, secrets redacted, within
// the dial timeout.
func TestOpenErrors(t *testing.T) {
	addr := server(t).Addr()
	ctx := context.Background()
	for _, url := range []string{
		"etcd://" + addr + "/x?bogus=1",
		"etcd:///x",
		"etcd://" + addr + "?timeout=never",
		"etcd://alice:hunter2@127.0.0.1:1/x",
		"etcd3+https://alice:hunter2@" + addr, // TLS to a plain server
	} {
		start := time.Now()
		d, err := etcd.Open(ctx, driver.Options{URL: url, Member: "m", TTL: time.Minute, DialTimeout: 2 * time.Second})
		if err == nil {
			d.Close(ctx)
			t.Errorf("open %s succeeded", driver.Redact(url))
			continue
		}
		t.Logf("%v (after %v)", err, time.Since(start).Round(time.Millisecond))
		if !errors.Is(err, driver.ErrUnavailable) || !strings.Contains(err.Error(), "etcd") {
			t.Errorf("open %s: %v; want ErrUnavailable naming etcd", driver.Redact(url), err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("open %s: the error shows the password: %v", driver.Redact(url), err)
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("open %s took %v with a 2s dial timeout", driver.Redact(url), took)
		}
	}
	if _, err := etcd.Open(ctx, driver.Options{URL: "etcd://" + addr, Member: "m", TTL: 0}); err == nil {
		t.Error("a zero TTL was accepted")
	}
}

// TestLeaseTTL: the lease is the member TTL rounded up to whole seconds.
func TestLeaseTTL(t *testing.T) {
	url := freshURL(t)
	ctx := context.Background()
	for ttl, want := range map[time.Duration]int64{600 * time.Millisecond: 1, 1500 * time.Millisecond: 2, 10 * time.Second: 10} {
		d, err := etcd.Open(ctx, driver.Options{URL: url, Member: "m", TTL: ttl, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if got := etcd.LeaseTTL(d); got != want {
			t.Errorf("TTL %v: lease of %d s; want %d", ttl, got, want)
		}
		d.Close(ctx)
	}
}

// TestHeartbeatReplacesBrokenStream: a heartbeat that finds its kept
// keep-alive stream broken opens a fresh one and renews on it, so the
// session stays up.
func TestHeartbeatReplacesBrokenStream(t *testing.T) {
	ctx := context.Background()
	d, err := etcd.Open(ctx, driver.Options{URL: freshURL(t), Member: "m", TTL: 10 * time.Second, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	hb := func(what string) {
		t.Helper()
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := d.Heartbeat(hctx); err != nil {
			t.Fatalf("heartbeat %s: %v", what, err)
		}
	}
	hb("opening the stream")
	for i := range 3 {
		if !etcd.BreakKeepAlive(d) {
			t.Fatalf("round %d: no kept stream after a heartbeat", i)
		}
		hb(fmt.Sprintf("after the stream broke (round %d)", i))
	}
	select {
	case <-d.Done():
		t.Fatal("the session ended")
	default:
	}
}
