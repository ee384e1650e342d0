package etcd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/musterhq/muster/plugins/etcd"
	"github.com/musterhq/muster/servicegroup/driver"
)

// TestAuth turns etcd's auth on for the package's server (top-level tests
// run one at a time, and it is turned off again at the end): the right
// user:password works, a wrong or missing one fails Open with a clear
// error, and the password never shows.
func TestAuth(t *testing.T) {
	addr := server(t).Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	steps := []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "r00t-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "alice", "hunter2"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "muster"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "muster", "\x00", "\x00", clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserGrantRole(ctx, "alice", "muster"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	}
	t.Cleanup(func() {
		root, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second,
			Username: "root", Password: "r00t-pw", Logger: zap.NewNop()})
		if err != nil {
			t.Errorf("root client: %v", err)
		} else {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := root.AuthDisable(cctx); err != nil {
				t.Errorf("disable auth: %v", err)
			}
			ccancel()
			root.Close()
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		admin, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Errorf("client: %v", err)
			return
		}
		defer admin.Close()
		_, _ = admin.UserDelete(cctx, "alice")
		_, _ = admin.RoleDelete(cctx, "muster")
		_, _ = admin.UserDelete(cctx, "root")
		if _, err := admin.Put(cctx, "auth-check", "x"); err != nil {
			t.Errorf("auth left on for the other tests: %v", err)
		}
	})
	for _, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("set up auth: %v", err)
		}
	}
	base := "/auth-" + randomID()
	open := func(userinfo string) (driver.Driver, error) {
		return etcd.Open(ctx, driver.Options{URL: "etcd://" + userinfo + addr + base, Member: "m", TTL: 5 * time.Second, DialTimeout: 4 * time.Second})
	}
	d, err := open("alice:hunter2@")
	if err != nil {
		t.Fatalf("open with the right password: %v", err)
	}
	if err := d.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := d.Join(ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.TryLock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ui := range []string{"alice:wrong-pw@", ""} {
		d, err := open(ui)
		if err == nil {
			if _, err = d.Groups(ctx); err == nil {
				d.Close(ctx)
				t.Errorf("credentials %q: Open and Groups succeeded with auth on", driver.Redact(ui))
				continue
			}
			d.Close(ctx)
		}
		t.Logf("%v", err)
		if strings.Contains(err.Error(), "wrong-pw") || !strings.Contains(err.Error(), "etcd") || !errors.Is(err, driver.ErrUnavailable) {
			t.Errorf("credentials %q: %v; want ErrUnavailable naming etcd without the password", driver.Redact(ui), err)
		}
	}
}
