package zookeeper

import (
	"github.com/go-zookeeper/zk"

	"github.com/musterhq/muster/servicegroup/driver"
)

// ConnOf is the ZooKeeper client of a session, for tests that end the
// session from outside.
func ConnOf(d driver.Driver) *zk.Conn {
	if s, ok := d.(*session); ok {
		return s.conn
	}
	return nil
}
