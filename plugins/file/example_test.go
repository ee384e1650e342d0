package file_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/servicegroup/driver"
)

// Two processes on one host would each open a session like this one, on
// the same directory, and heartbeat more often than the TTL.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "muster-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	s, err := file.Open(ctx, driver.Options{URL: "file://" + dir, Member: "compute-1", TTL: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	defer s.Close(ctx)

	caps, _ := driver.EncodeCapabilities(map[string]any{"zone": "z1"})
	_ = s.CreateGroup(ctx, "compute")
	if err := s.Join(ctx, "compute", caps); err != nil {
		panic(err)
	}
	members, _ := s.Members(ctx, "compute")
	for _, m := range members {
		c, _ := driver.DecodeCapabilities(m.Capabilities)
		fmt.Println(m.ID, c["zone"])
	}
	token, _ := s.TryLock(ctx, "schedule")
	fmt.Println("fencing token", token)
	// Output:
	// compute-1 z1
	// fencing token 1
}
