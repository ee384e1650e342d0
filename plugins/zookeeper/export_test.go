package zookeeper

import (
	"encoding/json"

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

// RecordOwned is the owned list of a session's record, as ZooKeeper holds
// it now.
func RecordOwned(d driver.Driver) ([]string, error) {
	s := d.(*session)
	data, _, err := s.conn.Get(s.recPath)
	if err != nil {
		return nil, err
	}
	var r record
	err = json.Unmarshal(data, &r)
	return r.Owned, err
}
