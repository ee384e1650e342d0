// Command muster-plugin-etcd serves the etcd backend as a muster plugin.
package main

import (
	"github.com/musterhq/muster/plugins/etcd"
	"github.com/musterhq/muster/plugins/serve"
)

func main() { serve.Driver(etcd.Open) }
