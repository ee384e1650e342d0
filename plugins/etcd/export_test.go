package etcd

import "github.com/musterhq/muster/servicegroup/driver"

// LeaseTTL is the granted TTL of a session's lease, in seconds.
func LeaseTTL(d driver.Driver) int64 {
	if s, ok := d.(*session); ok {
		return s.leaseTTL
	}
	return 0
}
