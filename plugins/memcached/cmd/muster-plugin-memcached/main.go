// Command muster-plugin-memcached serves the memcached backend as a muster
// plugin.
package main

import (
	"github.com/musterhq/muster/plugins/memcached"
	"github.com/musterhq/muster/plugins/serve"
)

func main() { serve.Driver(memcached.Open) }
