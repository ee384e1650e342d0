// Command muster-plugin-zookeeper serves the ZooKeeper backend as a muster
// plugin.
package main

import (
	"github.com/musterhq/muster/plugins/serve"
	"github.com/musterhq/muster/plugins/zookeeper"
)

func main() { serve.Driver(zookeeper.Open) }
