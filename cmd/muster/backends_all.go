//go:build allbackends

package main

// Built with -tags allbackends, muster links every backend, so mode =
// "inprocess" works on each and create-schema needs no plugin binary.

import (
	_ "github.com/musterhq/muster/plugins/etcd"
	_ "github.com/musterhq/muster/plugins/memcached"
	"github.com/musterhq/muster/plugins/mysql"
	"github.com/musterhq/muster/plugins/postgresql"
	_ "github.com/musterhq/muster/plugins/redis"
	_ "github.com/musterhq/muster/plugins/zookeeper"
)

func init() {
	linkedSchemas["postgresql"] = postgresql.CreateSchema
	linkedSchemas["mysql"] = mysql.CreateSchema
}
