// Package memcached is muster's memcached backend, in tooz's layout so
// that OpenStack services using tooz's memcached driver and muster agents
// see each other in one group (memcached://host:port[,host2:port...]).
//
// Liveness is decided by memcached's clock: every session has a key that
// expires unless Heartbeat renews it. memcached counts whole seconds, so a
// TTL becomes an expiry of the TTL rounded up plus one second: a member is
// listed for at least its TTL and at most about two seconds longer. The
// session itself gives up once its TTL has passed since the last renewal
// was sent, before the server can drop anything it held.
//
// Layout (keys carry the URL's prefix option first, "" by default):
//
//	_TOOZ_GROUP_<g>        tooz's group record: msgpack map of member id
//	                       (bin) -> {b"capabilities": value, b"session": id}
//	_TOOZ_GROUP_LIST       tooz's msgpack list of group names
//	_TOOZ_MEMBER_<m>       tooz's liveness key, set by every heartbeat of
//	                       a joined session ("muster:<session>", raw)
//	__TOOZ_LOCK_<name>     a lock's holder: tooz's own key, taken with add;
//	                       muster writes {member, session, token}
//	_MUSTER_SESSION_<id>   muster's liveness key: {member, stamp, expiry};
//	                       a tombstone {ended} once a later session of its
//	                       instance ended it
//	_MUSTER_INSTANCE_<h>   the latest session of an instance (no expiry)
//	_MUSTER_TOKEN_<name>   a lock's fencing counter (no expiry)
//	_MUSTER_DOWN_<g>       forced-down members of a group (no expiry)
//
// A space in a name becomes '/' in keys (names cannot hold '/'); groups
// called "LIST" or "LEADER_..." are refused, since their keys would be
// tooz's own records. Releases and removals are compare-and-swaps to a
// negative expiry: memcached's atomic compare-and-delete.
//
// See docs/backends/memcached.md for what memcached cannot make safe.
package memcached
