package zookeeper_test

import (
	"context"
	"fmt"
	"time"

	"github.com/musterhq/muster/plugins/zookeeper"
	"github.com/musterhq/muster/servicegroup/driver"
)

// A session on a ZooKeeper ensemble: members are tooz's ephemeral znodes,
// so tooz services in the same group see this one. (It needs a server, so
// it is compiled, not run.)
func ExampleOpen() {
	ctx := context.Background()
	s, err := zookeeper.Open(ctx, driver.Options{
		URL:    "zookeeper://zk1:2181,zk2:2181,zk3:2181/muster?timeout=5s",
		Member: "compute-1",
		TTL:    10 * time.Second, // within the ensemble's 2..20 ticks
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
