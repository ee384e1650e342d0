package etcd

import "github.com/musterhq/muster/servicegroup/driver"

// LeaseTTL is the granted TTL of a session's lease, in seconds.
func LeaseTTL(d driver.Driver) int64 {
	if s, ok := d.(*session); ok {
		return s.leaseTTL
	}
	return 0
}

// BreakKeepAlive cancels the session's kept keep-alive stream, as a lost
// connection would, and says whether there was one.
func BreakKeepAlive(d driver.Driver) bool {
	s := d.(*session)
	s.kaMu.Lock()
	defer s.kaMu.Unlock()
	if s.ka == nil {
		return false
	}
	s.ka.cancel()
	return true
}
