// Command muster-plugin-postgresql serves the postgresql backend as a muster plugin.
// Run as `muster-plugin-postgresql create-schema` (by `muster create-schema`)
// it creates the backend's tables at the URL read from stdin instead.
package main

import (
	"github.com/musterhq/muster/plugins/postgresql"
	"github.com/musterhq/muster/plugins/serve"
)

func main() {
	serve.Command("create-schema", postgresql.CreateSchema)
	serve.Driver(postgresql.Open)
}
