package serve_test

import (
	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/plugins/serve"
)

// A plugin binary's main: serve the file backend to the host that started
// it. Run by hand, it explains that it is a plugin and exits.
func Example() {
	serve.Driver(file.Open)
}
