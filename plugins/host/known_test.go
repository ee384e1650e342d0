package host_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestKnownMembersWithoutTheFeature: a plugin whose driver is no
// KnownMemberLister gives a session that says ErrUnimplemented, and the
// core falls back to the live listing, saying it holds no dead members.
func TestKnownMembersWithoutTheFeature(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	local := openInProcess(t, opts(dir, "local", time.Minute))
	if err := local.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := local.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	factory := host.Config{Dir: pluginDir, Logger: testLogger(t)}.Factory("watching")
	d, err := factory(ctx, opts(dir, "plugged", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	l, ok := d.(driver.KnownMemberLister)
	if !ok {
		t.Fatal("a host session is no KnownMemberLister")
	}
	if _, err := l.KnownMembers(ctx, "g"); !errors.Is(err, driver.ErrUnimplemented) {
		t.Fatalf("KnownMembers through a plugin without it: %v; want ErrUnimplemented", err)
	}

	sg, err := servicegroup.OpenDriver(ctx, servicegroup.Config{URL: "file://" + dir, Member: "obs",
		HeartbeatInterval: 100 * time.Millisecond, MemberTTL: time.Minute}, "file", factory)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close(ctx)
	ms, dead, err := sg.KnownMembers(ctx, "g")
	if err != nil || dead || len(ms) != 1 || ms[0].ID != "local" || !ms[0].Live {
		t.Fatalf("core KnownMembers: %+v, dead records %v, %v; want [local] live, no dead records", ms, dead, err)
	}
}
