// Command muster-plugin-mysql serves the mysql backend as a muster plugin.
// Run as `muster-plugin-mysql create-schema` (by `muster create-schema`)
// it creates the backend's tables at the URL read from stdin instead.
package main

import (
	"github.com/musterhq/muster/plugins/mysql"
	"github.com/musterhq/muster/plugins/serve"
)

func main() {
	serve.Command("create-schema", mysql.CreateSchema)
	serve.Driver(mysql.Open)
}
