package redis_test

import (
	"context"
	"fmt"
	"time"

	"github.com/musterhq/muster/plugins/redis"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Open a session on a Redis server and join a group. It needs a server on
// 127.0.0.1:6379, so it is compiled but not run.
func ExampleOpen() {
	ctx := context.Background()
	d, err := redis.Open(ctx, driver.Options{
		URL:    "redis://127.0.0.1:6379?namespace=_tooz",
		Member: "compute-1",
		TTL:    10 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close(ctx)
	_ = d.CreateGroup(ctx, "compute")
	if err := d.Join(ctx, "compute", nil); err != nil {
		fmt.Println(err)
	}
}
