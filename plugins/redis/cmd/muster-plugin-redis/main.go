// Command muster-plugin-redis serves the redis backend as a muster plugin.
package main

import (
	"github.com/musterhq/muster/plugins/redis"
	"github.com/musterhq/muster/plugins/serve"
)

func main() { serve.Driver(redis.Open) }
