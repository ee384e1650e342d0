package partition_test

import (
	"context"
	"fmt"

	_ "github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/servicegroup"
	"github.com/musterhq/muster/servicegroup/hashring"
	"github.com/musterhq/muster/servicegroup/partition"
)

// Two central agents split six resources between them; each computes its
// own share. (The tooz ring is used so that the output is the one Python
// tooz would give; hashring.Default is the usual choice.)
func Example() {
	ctx := context.Background()
	resources := []string{"vm-1", "vm-2", "vm-3", "vm-4", "vm-5", "vm-6"}
	var agents []*servicegroup.ServiceGroup
	for _, name := range []string{"agent-a", "agent-b"} {
		sg, err := servicegroup.Open(ctx, servicegroup.Config{URL: "memory://example", Member: name})
		if err != nil {
			panic(err)
		}
		defer sg.Close(ctx)
		if err := sg.JoinOrCreate(ctx, "central", nil); err != nil {
			panic(err)
		}
		agents = append(agents, sg)
	}
	for _, sg := range agents {
		p, err := partition.New(ctx, sg, "central", partition.WithAlgorithm(hashring.Tooz))
		if err != nil {
			panic(err)
		}
		defer p.Close()
		fmt.Println(sg.Member(), "polls", p.Subset(resources))
	}
	// Output:
	// agent-a polls [vm-2 vm-4 vm-5]
	// agent-b polls [vm-1 vm-3 vm-6]
}
