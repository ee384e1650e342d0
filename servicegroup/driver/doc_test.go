package driver_test

import (
	"errors"
	"fmt"

	"github.com/musterhq/muster/servicegroup/driver"
)

// Names are checked once, centrally, with errors that say what is wrong.
func ExampleValidateName() {
	fmt.Println(driver.ValidateName("group", "节点-ü"))
	err := driver.ValidateName("group", "a/b")
	fmt.Println(errors.Is(err, driver.ErrInvalidName), err)
	// Output:
	// <nil>
	// true invalid name: group "a/b": contains a path separator
}

// Capabilities round-trip through msgpack in a normal form.
func ExampleDecodeCapabilities() {
	b, _ := driver.EncodeCapabilities(map[string]any{"vcpus": 8, "zone": "az1", "blob": []byte{1}})
	caps, _ := driver.DecodeCapabilities(b)
	fmt.Printf("%T %v %v %v\n", caps["vcpus"], caps["vcpus"], caps["zone"], caps["blob"])
	// Output: int64 8 az1 [1]
}
