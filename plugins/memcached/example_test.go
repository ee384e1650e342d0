package memcached_test

import (
	"context"
	"fmt"
	"time"

	"github.com/musterhq/muster/plugins/memcached"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Open a session on a memcached at the default port and list a group.
func Example() {
	ctx := context.Background()
	d, err := memcached.Open(ctx, driver.Options{
		URL:    "memcached://127.0.0.1:11211",
		Member: "compute-1",
		TTL:    10 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close(ctx)
	_ = d.CreateGroup(ctx, "compute")
	_ = d.Join(ctx, "compute", nil)
	ms, _ := d.Members(ctx, "compute")
	fmt.Println(len(ms))
}
