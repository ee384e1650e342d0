package etcd_test

import (
	"context"
	"fmt"
	"time"

	"github.com/musterhq/muster/plugins/etcd"
	"github.com/musterhq/muster/servicegroup/driver"
)

// A session on an etcd cluster: members are tooz's keys on the session's
// lease, so tooz services in the same group see this one. (It needs a
// server, so it is compiled, not run.)
func ExampleOpen() {
	ctx := context.Background()
	s, err := etcd.Open(ctx, driver.Options{
		URL:    "etcd://etcd1:2379,etcd2:2379,etcd3:2379?timeout=5s",
		Member: "compute-1",
		TTL:    10 * time.Second, // the lease: whole seconds
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(ctx)
	caps, _ := driver.EncodeCapabilities(map[string]any{"zone": "z1"})
	_ = s.CreateGroup(ctx, "compute")
	if err := s.Join(ctx, "compute", caps); err != nil {
		fmt.Println(err)
		return
	}
	token, _ := s.TryLock(ctx, "schedule")
	fmt.Println("fencing token", token)
}
