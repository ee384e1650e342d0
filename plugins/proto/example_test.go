package proto_test

import (
	"errors"
	"fmt"

	"github.com/musterhq/muster/plugins/proto"
	"github.com/musterhq/muster/servicegroup/driver"
)

// A plugin returns ToStatus(err); the host rebuilds the error with
// FromStatus: same text, same sentinel.
func Example() {
	wire := proto.ToStatus(driver.Errorf("file", "join", "compute", driver.ErrGroupNotFound))

	err, _ := proto.FromStatus(wire)
	fmt.Println(err)
	fmt.Println(errors.Is(err, driver.ErrGroupNotFound))
	// Output:
	// file: join "compute": group not found
	// true
}
