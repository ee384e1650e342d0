package servicegroup_test

import (
	"context"
	"fmt"

	_ "github.com/musterhq/muster/plugins/memory" // link the memory backend in-process
	"github.com/musterhq/muster/servicegroup"
)

// A compute host joins; the scheduler side sees it up, with its
// capabilities.
func Example() {
	ctx := context.Background()
	host, err := computeHost(ctx, "memory://example", "compute-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer host.Close(ctx)

	scheduler, err := servicegroup.Open(ctx, servicegroup.Config{URL: "memory://example", Member: "scheduler"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer scheduler.Close(ctx)
	up, _ := scheduler.IsUp(ctx, "compute", "compute-1")
	hosts, _ := scheduler.GetAll(ctx, "compute")
	fmt.Println(up, hosts[0].ID, hosts[0].Capabilities["vcpus"])

	lock := scheduler.Lock("placement")
	token, _ := lock.Acquire(ctx)
	fmt.Println("fencing token", token)
	_ = lock.Release(ctx)
	// Output:
	// true compute-1 8
	// fencing token 1
}

// computeHost is the compute host's side of the examples: a session as
// member that has joined the "compute" group with its capabilities.
func computeHost(ctx context.Context, url, member string) (*servicegroup.ServiceGroup, error) {
	host, err := servicegroup.Open(ctx, servicegroup.Config{URL: url, Member: member})
	if err != nil {
		return nil, err
	}
	if err := host.JoinOrCreate(ctx, "compute", servicegroup.Capabilities{"vcpus": 8}); err != nil {
		_ = host.Close(ctx)
		return nil, err
	}
	return host, nil
}
