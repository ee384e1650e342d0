// Command muster-plugin-postgresql serves the postgresql backend as a muster plugin.
package main

import (
	"github.com/musterhq/muster/plugins/postgresql"
	"github.com/musterhq/muster/plugins/serve"
)

func main() { serve.Driver(postgresql.Open) }
