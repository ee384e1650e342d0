package zookeeper_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/zookeeper"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestJoinRecordsOwnership: the session record lists a member node as
// soon as Join returns, before any other write of the session (a heartbeat
// or a lock would rewrite the record anyway), and again after a leave and
// a re-join. A newer session of the instance deletes what the record
// lists, even if the earlier session is frozen and cannot end itself.
func TestJoinRecordsOwnership(t *testing.T) {
	url := freshURL(t)
	ctx := context.Background()
	d, err := zookeeper.Open(ctx, driver.Options{URL: url, Member: "m", Instance: "host-1", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	if err := d.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	lists := func(when string) {
		t.Helper()
		owned, err := zookeeper.RecordOwned(d)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(owned, func(p string) bool { return strings.HasSuffix(p, "/g/m") }) {
			t.Fatalf("%s: the session record owns %q, not the member node", when, owned)
		}
	}
	if err := d.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	lists("after Join")
	if err := d.Leave(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := d.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	lists("after a re-join")
}
