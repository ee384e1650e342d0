// Command muster-plugin-file serves the file backend as a muster plugin.
package main

import (
	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/plugins/serve"
)

func main() { serve.Driver(file.Open) }
