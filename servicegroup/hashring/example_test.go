package hashring_test

import (
	"fmt"

	"github.com/musterhq/muster/servicegroup/hashring"
)

func Example() {
	ring, err := hashring.New(hashring.Tooz, []hashring.Node{{Name: "foo"}, {Name: "bar"}, {Name: "baz"}})
	if err != nil {
		panic(err)
	}
	owner, _ := ring.Owner([]byte("fake-again"))
	fmt.Println(owner)
	// The member that takes over while bar is down, and after it leaves.
	fmt.Println(ring.Owners([]byte("fake-again"), 1, "bar"))
	owner, _ = ring.Without("bar").Owner([]byte("fake-again"))
	fmt.Println(owner)
	// Output:
	// bar
	// [baz]
	// baz
}
