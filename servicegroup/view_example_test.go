package servicegroup_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/musterhq/muster/servicegroup"
)

// A scheduler holds the compute group in a View and asks IsUp for each
// candidate from memory; a force-down shows once the view has synced.
func ExampleServiceGroup_View() {
	ctx := context.Background()
	host, err := computeHost(ctx, "memory://example-view", "compute-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer host.Close(ctx)
	scheduler, err := servicegroup.Open(ctx, servicegroup.Config{URL: "memory://example-view", Member: "scheduler"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer scheduler.Close(ctx)

	view, err := scheduler.View(ctx, "compute")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer view.Close()
	for _, h := range []string{"compute-1", "compute-2"} {
		up, err := view.IsUp(h) // no round trip
		if errors.Is(err, servicegroup.ErrStale) {
			fmt.Println("cannot tell:", err)
			continue
		}
		fmt.Println(h, up)
	}
	_ = scheduler.ForceDown(ctx, "compute", "compute-1", true)
	_ = view.Synced(ctx) // reflects every change made before the call
	up, _ := view.IsUp("compute-1")
	fmt.Println("compute-1 after force-down", up)
	// Output:
	// compute-1 true
	// compute-2 false
	// compute-1 after force-down false
}
