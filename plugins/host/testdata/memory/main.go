// Command memory serves the memory backend as a plugin. Its store is the
// plugin process's own, so only one session sees it; but its calls do
// almost no work, so a hot call through it costs the transport and little
// else (BenchmarkTransport's memory-plugin cases).
package main

import (
	"github.com/musterhq/muster/plugins/memory"
	"github.com/musterhq/muster/plugins/serve"
)

func main() { serve.Driver(memory.Open) }
