package zookeeper_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster/plugins/host"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestKazooAlias: tooz's kazoo:// spelling opens the same backend, from
// the registry and through the plugin (the host runs muster-plugin-zookeeper
// for it), and both see one group.
func TestKazooAlias(t *testing.T) {
	addr := server(t).Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	chroot := "/kazoo-" + randomID()
	opts := func(scheme, member string) driver.Options {
		return driver.Options{URL: scheme + "://" + addr + chroot, Member: member, TTL: time.Minute, DialTimeout: 10 * time.Second}
	}
	f, ok := driver.Lookup("kazoo")
	if !ok {
		t.Fatal("scheme kazoo is not registered")
	}
	a, err := f(ctx, opts("kazoo", "a"))
	if err != nil {
		t.Fatalf("open kazoo:// in-process: %v", err)
	}
	defer a.Close(ctx)
	b, err := host.Config{Dir: pluginDir}.Factory("kazoo")(ctx, opts("kazoo", "b"))
	if err != nil {
		t.Fatalf("open kazoo:// through the plugin: %v", err)
	}
	defer b.Close(ctx)
	if err := a.CreateGroup(ctx, "g"); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := b.Join(ctx, "g", nil); err != nil {
		t.Fatalf("join through the plugin: %v", err)
	}
	ms, err := a.Members(ctx, "g")
	if err != nil || len(ms) != 1 || ms[0].ID != "b" {
		t.Fatalf("members %+v, %v; want b", ms, err)
	}
	if !strings.HasPrefix(host.BinaryName("kazoo"), "muster-plugin-zookeeper") {
		t.Errorf("kazoo runs %s", host.BinaryName("kazoo"))
	}
}
