// Command muster-plugin-mysql serves the mysql backend (MySQL and MariaDB)
// as a muster plugin.
package main

import (
	"github.com/musterhq/muster/plugins/mysql"
	"github.com/musterhq/muster/plugins/serve"
)

func main() { serve.Driver(mysql.Open) }
